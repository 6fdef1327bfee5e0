"""The disk spool: an append-only write-ahead log of Kafka messages, so nothing is lost.

Every message a collector makes is appended here first and published from here, in
order; the publisher commits a position only after the broker acknowledged every
message before it (acks=all). So:

- Kafka down: messages pile up in the spool (bounded by `max_bytes`) and go out in order
  when it returns.
- killed with -9: what was appended is in the file (one `write` per append; the page
  cache survives the process), and the next run publishes from the committed position.
  A torn last record (killed mid-write) fails its CRC and is cut off.
- clean stop: the publisher drains and commits before exit, so a restart publishes
  nothing twice. (A kill -9 between an ack and the commit that follows it can publish
  the last acknowledged batch again: at-least-once there, which the normaliser's
  dedupe on (meter_id, ts) absorbs.)

Layout under the spool directory: segment files `000000000001.seg` ... (rolled at
`segment_bytes`; a new run starts a new segment), and `committed` holding
"segment offset" of the first unpublished byte, replaced atomically (write + rename).

Record: `>II` (payload length, CRC-32 of payload), then payload `>HHII` (topic, key,
meta, value lengths), topic, key, meta (JSON: headers, per-device counts, readings), value.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from collectors.metrics import SPOOL_BYTES, SPOOL_DROPPED, SPOOL_READINGS

__all__ = ["Spool", "SpoolRecord"]

log = logging.getLogger(__name__)

_HEAD = struct.Struct(">II")
_LENS = struct.Struct(">HHII")
_MAX_RECORD = 64 * 1024 * 1024


@dataclass
class SpoolRecord:
    """One Kafka message waiting in the spool."""

    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # "device|protocol" -> readings
    readings: int = 0
    position: tuple[int, int] = (0, 0)  # (segment, offset) just after this record

    def encode(self) -> bytes:
        """The record as bytes on disk."""
        meta = json.dumps(
            {
                "h": [[k, v.decode("latin-1")] for k, v in self.headers],
                "c": self.counts,
                "n": self.readings,
            },
            separators=(",", ":"),
        ).encode()
        topic = self.topic.encode()
        payload = (
            _LENS.pack(len(topic), len(self.key), len(meta), len(self.value))
            + topic
            + self.key
            + meta
            + self.value
        )
        return _HEAD.pack(len(payload), zlib.crc32(payload)) + payload

    @classmethod
    def decode(cls, payload: bytes, position: tuple[int, int]) -> SpoolRecord:
        """A record from its payload bytes."""
        lt, lk, lm, lv = _LENS.unpack_from(payload)
        at = _LENS.size
        topic = payload[at : at + lt].decode()
        at += lt
        key = payload[at : at + lk]
        at += lk
        meta = json.loads(payload[at : at + lm])
        at += lm
        value = payload[at : at + lv]
        return cls(
            topic=topic,
            key=key,
            value=value,
            headers=[(k, v.encode("latin-1")) for k, v in meta["h"]],
            counts=meta["c"],
            readings=meta["n"],
            position=position,
        )


def _scan(path: Path, start: int) -> tuple[list[tuple[int, int]], int]:
    """(end offset, readings) of each whole record from `start`, and where valid data ends."""
    out: list[tuple[int, int]] = []
    with path.open("rb") as f:
        f.seek(start)
        at = start
        while True:
            head = f.read(_HEAD.size)
            if len(head) < _HEAD.size:
                break
            length, crc = _HEAD.unpack(head)
            if length > _MAX_RECORD:
                break
            payload = f.read(length)
            if len(payload) < length or zlib.crc32(payload) != crc:
                break
            at += _HEAD.size + length
            out.append((at, SpoolRecord.decode(payload, (0, at)).readings))
    return out, at


class Spool:
    """Append-only segments plus a committed position; see the module docstring."""

    def __init__(
        self, directory: str | Path, max_bytes: int, segment_bytes: int | None = None
    ) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes or max(64 * 1024, min(16 * 2**20, max_bytes // 8))
        self._sizes: dict[int, int] = {}
        self._readings: dict[int, list[tuple[int, int]]] = {}  # segment -> [(end, readings)]
        self.committed = self._read_committed()
        self._recover()
        self.cursor = self.committed
        self.backlog_readings = self._count_backlog()  # readings appended, not yet committed
        self._write_seg = max(self._sizes, default=self.committed[0]) + 1
        self._fd = self._open_segment(self._write_seg)
        self._update_gauges()

    # ---------------------------------------------------------------- files

    def _seg_path(self, seg: int) -> Path:
        return self.dir / f"{seg:012d}.seg"

    def _read_committed(self) -> tuple[int, int]:
        try:
            seg, off = (self.dir / "committed").read_text().split()
            return int(seg), int(off)
        except (OSError, ValueError):
            return (0, 0)

    def _recover(self) -> None:
        cseg, coff = self.committed
        for path in sorted(self.dir.glob("*.seg")):
            seg = int(path.stem)
            if seg < cseg:
                path.unlink()
                continue
            start = coff if seg == cseg else 0
            records, end = _scan(path, start)
            size = path.stat().st_size
            if end < size:
                log.warning("spool %s: cutting a torn record at byte %d of %d", path, end, size)
                with path.open("r+b") as f:
                    f.truncate(end)
            self._sizes[seg] = end
            self._readings[seg] = records
        if self._sizes and cseg not in self._sizes:
            # the committed segment was removed: start at the first one left
            self.committed = (min(self._sizes), 0)

    def _open_segment(self, seg: int) -> int:
        fd = os.open(self._seg_path(seg), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._sizes[seg] = os.fstat(fd).st_size
        self._readings.setdefault(seg, [])
        return fd

    # ---------------------------------------------------------------- API

    @property
    def backlog_bytes(self) -> int:
        """Bytes appended and not yet committed."""
        cseg, coff = self.committed
        return sum(size for seg, size in self._sizes.items() if seg >= cseg) - coff

    def _count_backlog(self) -> int:
        cseg, coff = self.committed
        total = 0
        for seg, records in self._readings.items():
            if seg > cseg:
                total += sum(n for _, n in records)
            elif seg == cseg:
                total += sum(n for end, n in records if end > coff)
        return total

    @property
    def end(self) -> tuple[int, int]:
        """The position after the last record appended."""
        return (self._write_seg, self._sizes[self._write_seg])

    def append(self, records: list[SpoolRecord]) -> None:
        """Append records with one write (whole records or none reach the file)."""
        if not records:
            return
        if self._fd < 0:
            raise RuntimeError(f"spool {self.dir} is closed")
        if self._sizes[self._write_seg] >= self.segment_bytes:
            os.close(self._fd)
            self._write_seg += 1
            self._fd = self._open_segment(self._write_seg)
        data = bytearray()
        at = self._sizes[self._write_seg]
        entries = self._readings[self._write_seg]
        for record in records:
            data += record.encode()
            entries.append((at + len(data), record.readings))
        os.write(self._fd, data)
        self._sizes[self._write_seg] = at + len(data)
        self.backlog_readings += sum(r.readings for r in records)
        self._enforce_bound()
        self._update_gauges()

    def read(self, max_records: int = 500) -> list[SpoolRecord]:
        """Up to `max_records` records from the read cursor on, advancing the cursor."""
        out: list[SpoolRecord] = []
        seg, off = self.cursor
        while len(out) < max_records:
            if seg not in self._sizes:
                later = [s for s in self._sizes if s > seg]
                if not later:
                    break
                seg, off = min(later), 0
            if off >= self._sizes[seg]:
                if seg >= self._write_seg:
                    break
                seg, off = seg + 1, 0
                continue
            with self._seg_path(seg).open("rb") as f:
                f.seek(off)
                data = f.read(min(self._sizes[seg] - off, 4 * 2**20))
            at = 0
            while len(out) < max_records and at + _HEAD.size <= len(data):
                length, _crc = _HEAD.unpack_from(data, at)
                end = at + _HEAD.size + length
                if end > len(data):
                    break
                out.append(SpoolRecord.decode(data[at + _HEAD.size : end], (seg, off + end)))
                at = end
            if at == 0:  # a record larger than the chunk: read it whole
                with self._seg_path(seg).open("rb") as f:
                    f.seek(off)
                    length, _crc = _HEAD.unpack(f.read(_HEAD.size))
                    payload = f.read(length)
                at = _HEAD.size + length
                out.append(SpoolRecord.decode(payload, (seg, off + at)))
            off += at
        self.cursor = (seg, off)
        return out

    def rewind(self) -> None:
        """Read again from the committed position (after a failed send)."""
        self.cursor = self.committed

    def commit(self, position: tuple[int, int], readings: int) -> None:
        """Everything before `position` (`readings` more readings) is acknowledged.

        Persists the position and drops the segments before it.
        """
        if position <= self.committed:
            return
        self.backlog_readings -= readings
        self._set_committed(position)
        self._update_gauges()

    def _set_committed(self, position: tuple[int, int]) -> None:
        self.committed = position
        tmp = self.dir / "committed.tmp"
        tmp.write_text(f"{position[0]} {position[1]}\n")
        os.replace(tmp, self.dir / "committed")
        for seg in [s for s in self._sizes if s < position[0]]:
            self._drop_segment(seg)

    def close(self) -> None:
        """Close the write segment (its data stays for the next run)."""
        os.close(self._fd)
        self._fd = -1

    # ---------------------------------------------------------------- internals

    def _drop_segment(self, seg: int) -> None:
        self._sizes.pop(seg, None)
        self._readings.pop(seg, None)
        self._seg_path(seg).unlink(missing_ok=True)

    def _enforce_bound(self) -> None:
        # over the bound: drop the oldest whole segments (never the one being written)
        while self.backlog_bytes > self.max_bytes:
            oldest = min(self._sizes)
            if oldest >= self._write_seg:
                break
            cseg, coff = self.committed
            lost = sum(n for end, n in self._readings[oldest] if oldest > cseg or end > coff)
            log.error(
                "spool over its bound of %d bytes: dropping segment %d (%d readings lost)",
                self.max_bytes,
                oldest,
                lost,
            )
            SPOOL_DROPPED.inc(lost)
            self.backlog_readings -= lost
            self._drop_segment(oldest)
            self._set_committed((min(self._sizes), 0))
            if self.cursor < self.committed:
                self.cursor = self.committed

    def _update_gauges(self) -> None:
        SPOOL_BYTES.set(self.backlog_bytes)
        SPOOL_READINGS.set(self.backlog_readings)
