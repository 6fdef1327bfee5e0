"""The Modbus collector (pymodbus): batched register reads, decoding, one task per device.

Each device is polled every `interval` on its own task, so a device that times out
delays only itself. Meters whose registers are contiguous (same slave and register
type) are read in one request of at most `max_batch` registers; when a batch answers
with an exception code, its meters are read one by one so the faulty address is
pinned down and reported (DLQ, reason device_error) while its neighbours still count.

`ts` is the poll time (UTC, ms), or, when the device map gives the device a `clock`
register (Unix milliseconds, read in the same cycle), the device's own clock. The
simulator publishes its simulated clock there, which is how `--speed` reaches `ts`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from dataclasses import dataclass
from typing import Any

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from collectors.devices import DATA_TYPES, ClockSpec, MeterSpec, ModbusDevice
from collectors.metrics import LAST_READ, READ_ERRORS, READINGS_READ
from collectors.publisher import Publisher
from collectors.readings import Sequencer, make_row, ms_time, now_utc, scaled_value
from schemas.errors import ContractError, ReasonCode

__all__ = ["ModbusCollector", "decode_registers", "encode_registers", "plan_batches"]

log = logging.getLogger(__name__)

_FORMATS = {
    "UINT16": "H",
    "INT16": "h",
    "UINT32": "I",
    "INT32": "i",
    "UINT64": "Q",
    "INT64": "q",
    "FLOAT32": "f",
    "FLOAT64": "d",
}


def _swap_bytes(regs: list[int]) -> list[int]:
    return [((r & 0xFF) << 8) | (r >> 8) for r in regs]


def decode_registers(regs: list[int], data_type: str, byte_order: str = "ABCD") -> int | float:
    """A value from its registers: ABCD big-endian, CDAB word-swapped, BADC byte-swapped,
    DCBA little-endian (the letters of a 32-bit value; 16/64-bit values follow the same rule).
    """
    if byte_order in ("BADC", "DCBA"):
        regs = _swap_bytes(regs)
    if byte_order in ("CDAB", "DCBA"):
        regs = regs[::-1]
    raw = b"".join(r.to_bytes(2, "big") for r in regs)
    return struct.unpack(">" + _FORMATS[data_type], raw)[0]


def encode_registers(value: int | float, data_type: str, byte_order: str = "ABCD") -> list[int]:
    """The registers a device holds for `value` (inverse of decode_registers)."""
    raw = struct.pack(">" + _FORMATS[data_type], value)
    regs = [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]
    if byte_order in ("CDAB", "DCBA"):
        regs = regs[::-1]
    if byte_order in ("BADC", "DCBA"):
        regs = _swap_bytes(regs)
    return regs


@dataclass(frozen=True)
class _Item:
    slave_id: int
    register: str
    address: int
    width: int
    meter: MeterSpec | None  # None: the clock


@dataclass(frozen=True)
class _Batch:
    slave_id: int
    register: str
    address: int
    count: int
    items: tuple[_Item, ...]


def plan_batches(
    meters: tuple[MeterSpec, ...], clock: ClockSpec | None, max_batch: int, max_gap: int = 0
) -> list[_Batch]:
    """Group registers of one slave and register type into reads of <= max_batch registers.

    Neighbours join a read when they are contiguous, or at most `max_gap` unused registers
    apart (as Telegraf's register fill: fewer requests, but every spanned register must exist).
    """
    items = [_Item(m.slave_id, m.register, m.address, m.width, m) for m in meters]
    if clock is not None:
        items.append(
            _Item(clock.slave_id, clock.register, clock.address, DATA_TYPES[clock.data_type], None)
        )
    items.sort(key=lambda i: (i.slave_id, i.register, i.address))
    batches: list[_Batch] = []
    current: list[_Item] = []
    for item in items:
        if current:
            head = current[0]
            end = max(i.address + i.width for i in current)
            same = head.slave_id == item.slave_id and head.register == item.register
            if (
                same
                and item.address <= end + max_gap
                and item.address + item.width - head.address <= max_batch
            ):
                current.append(item)
                continue
            batches.append(_make_batch(current))
        current = [item]
    if current:
        batches.append(_make_batch(current))
    return batches


def _make_batch(items: list[_Item]) -> _Batch:
    start = items[0].address
    end = max(i.address + i.width for i in items)
    return _Batch(items[0].slave_id, items[0].register, start, end - start, tuple(items))


class _DeviceDown(Exception):
    def __init__(self, kind: str, detail: str) -> None:
        self.kind = kind
        super().__init__(detail)


class ModbusCollector:
    """Polls one Modbus device every `interval` and hands each cycle to the publisher."""

    protocol = "modbus"

    def __init__(
        self, device: ModbusDevice, publisher: Publisher, sequencer: Sequencer | None = None
    ) -> None:
        self.device = device
        self.publisher = publisher
        self.seq = sequencer or Sequencer()
        self.batches = plan_batches(device.meters, device.clock, device.max_batch, device.max_gap)
        self.source = f"modbus://{device.name}"
        self.cycles = 0
        self._client: Any = None
        self._labels = {"device": device.name, "protocol": self.protocol}
        self._last_error_log = 0.0

    def _make_client(self) -> Any:
        d = self.device
        if d.transmission_mode == "RTU":
            return AsyncModbusSerialClient(
                d.serial_port,
                baudrate=d.baud_rate,
                bytesize=d.data_bits,
                parity=d.parity,
                stopbits=d.stop_bits,
                timeout=d.timeout,
                retries=d.retries,
            )
        host, port = d.host_port
        return AsyncModbusTcpClient(
            host, port=port, timeout=d.timeout, retries=d.retries, reconnect_delay=0
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Poll on a fixed schedule until `stop` is set (a slow cycle skips missed slots)."""
        interval = self.device.interval
        next_at = time.monotonic()
        try:
            while not stop.is_set():
                await self.poll_once()
                next_at += interval
                now = time.monotonic()
                if next_at < now:  # overran: skip the slots we missed rather than burst
                    next_at = now + interval - (now - next_at) % interval
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), next_at - now)
        finally:
            self.close()

    def close(self) -> None:
        """Close the connection."""
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None

    async def _connect(self) -> Any:
        if self._client is None:
            self._client = self._make_client()
        if not self._client.connected:
            try:
                ok = await asyncio.wait_for(self._client.connect(), self.device.timeout + 1)
            except (TimeoutError, OSError, ModbusException) as exc:
                self.close()
                raise _DeviceDown("connection", str(exc)) from None
            if not ok:
                self.close()
                raise _DeviceDown("connection", f"cannot connect to {self.device.controller}")
        return self._client

    async def _read(self, slave_id: int, register: str, address: int, count: int) -> Any:
        client = await self._connect()
        call = (
            client.read_holding_registers if register == "holding" else client.read_input_registers
        )
        # pymodbus retries itself; this bound only guards against a hung transport
        bound = self.device.timeout * (self.device.retries + 1) + 1
        try:
            return await asyncio.wait_for(call(address, count=count, device_id=slave_id), bound)
        except (TimeoutError, ModbusIOException) as exc:
            self.close()
            raise _DeviceDown("timeout", str(exc)) from None
        except (ConnectionException, OSError) as exc:
            self.close()
            raise _DeviceDown("connection", str(exc)) from None

    async def poll_once(self) -> int:
        """One cycle: read every batch, publish the readings; returns readings published."""
        self.cycles += 1
        poll_ts = now_utc()
        values: dict[_Item, list[int]] = {}
        failed: dict[_Item, int] = {}  # item -> exception code
        try:
            for batch in self.batches:
                response = await self._read(
                    batch.slave_id, batch.register, batch.address, batch.count
                )
                if not response.isError():
                    regs = response.registers
                    for item in batch.items:
                        at = item.address - batch.address
                        values[item] = regs[at : at + item.width]
                    continue
                # an exception code: read the batch's items one by one to find the culprit
                for item in batch.items:
                    single = (
                        response
                        if len(batch.items) == 1
                        else await self._read(
                            item.slave_id, item.register, item.address, item.width
                        )
                    )
                    if single.isError():
                        failed[item] = getattr(single, "exception_code", 0)
                    else:
                        values[item] = single.registers
        except _DeviceDown as exc:
            READ_ERRORS.labels(**self._labels, kind=exc.kind).inc()
            self._log_error(exc.kind, str(exc))
            return 0
        ts = poll_ts
        clock = self.device.clock
        if clock is not None:
            clock_item = next(i for b in self.batches for i in b.items if i.meter is None)
            if clock_item not in values:
                READ_ERRORS.labels(**self._labels, kind="clock").inc()
                self._log_error("clock", f"clock register failed: code {failed.get(clock_item)}")
                return 0
            ts = ms_time(
                int(decode_registers(values[clock_item], clock.data_type, clock.byte_order))
            )
        rows = self._rows(values, failed, ts)
        LAST_READ.labels(**self._labels).set(time.time())
        return self.publisher.publish(self.device.name, self.protocol, rows) if rows else 0

    def _rows(
        self, values: dict[_Item, list[int]], failed: dict[_Item, int], ts: Any
    ) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        name, protocol = self.device.name, self.protocol
        for item, code in failed.items():
            if item.meter is None:
                continue
            READ_ERRORS.labels(**self._labels, kind="exception_code").inc()
            row = make_row(
                item.meter,
                None,
                ts,
                quality="bad",
                source=self.source,
                seq=self.seq.next(item.meter.meter_id),
            )
            err = ContractError(
                ReasonCode.DEVICE_ERROR,
                f"exception code {code} reading {item.register} register {item.address}",
                "value",
            )
            self.publisher.reject(name, protocol, row, err)
        for item, regs in values.items():
            meter = item.meter
            if meter is None or not self.seq.is_new(meter.meter_id, ts):
                continue
            READINGS_READ.labels(**self._labels).inc()
            raw = decode_registers(regs, meter.data_type, meter.byte_order)
            period_start = None
            if meter.kind == "interval":
                period_start = self.seq.period_start(meter.meter_id, ts, self.device.interval)
            row = make_row(
                meter,
                raw,
                ts,
                quality="good",
                source=self.source,
                seq=self.seq.next(meter.meter_id),
                period_start=period_start,
            )
            try:
                row["value"] = scaled_value(meter, raw)
            except ContractError as exc:
                READ_ERRORS.labels(**self._labels, kind="bad_value").inc()
                self.publisher.reject(name, protocol, row, exc)
                continue
            rows.append(row)
        return rows

    def _log_error(self, kind: str, detail: str) -> None:
        now = time.monotonic()
        if now - self._last_error_log > 30:  # a dead device must not flood the log
            self._last_error_log = now
            log.warning("modbus %s: %s: %s", self.device.name, kind, detail)
