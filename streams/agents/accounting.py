"""The accounting agent: `meter.readings` → `energy.intervals` + `emissions.windows`.

Thin I/O around `streams.rules.accounting.Accountant`:

- a message on `meter.readings` is an Arrow IPC batch of one account's readings or one
  JSON reading (header `content-type`, see `schemas.codec`); the whole message is
  normalised and accounted at once, and up to 200 messages (at most 20 ms old) are
  decoded together first (pyarrow's cost is per call, not per row). The messages come
  from Faust's fetch loop straight to the inbox (`_bulk`), not through the agent's
  stream: Faust's per-message delivery cost as much as the accounting;
- the account's state (`AccountState`: its meters and kept windows) lives in the table
  `accounting-state`, keyed by account_id. Changed accounts are written to its changelog
  by a snapshot every `streams.snapshot_seconds` (and when the stream goes quiet), and
  the messages a snapshot covers are acked only after it, so committed offsets never
  pass the stored state. Each state records the offset of the last message it applied:
  a message delivered again after a restart or a rebalance is skipped, exactly. An
  account with many messages between two snapshots (a catch-up) is written once;
- out, as Arrow IPC batches of many messages' rows (at most 0.1 s old; header
  `content-type: application/vnd.apache.arrow.stream`, no key): `EnergyInterval`s on
  `energy.intervals` (to the readings' partition number), new or revised
  `EmissionWindow`s on `emissions.windows` (to each account's partition by the default
  partitioner, as a keyed send would go); rejected readings verbatim on
  `meter.readings.dlq` (an Arrow row as a one-row Arrow batch) with reasons. One send
  per batch, not per window: aiokafka's per-send cost capped the worker;
- reference data: every worker reads all of `factors` and `accounts.registry` (compacted)
  from the start with a group-less consumer; a factor revision or a region change
  re-examines the kept windows of this worker's accounts and re-emits those it changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from itertools import chain
from typing import Any

import faust
import mode
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner
from faust.serializers import codecs
from faust.types import Message

from infra.broker import COMPACTION
from schemas.codec import ARROW_FORMAT, FORMAT_HEADER, JSON_FORMAT, arrow_schema, decode_json
from schemas.contracts import Account, EmissionFactor, EmissionWindow, EnergyInterval, Reading
from schemas.dlq import dlq_headers, dlq_topic
from schemas.errors import ContractError, ReasonCode
from schemas.factors import FactorBook, load_factors
from schemas.settings import Settings
from schemas.units import CANONICAL_UNIT
from streams.agents._bulk import deliver_in_bulk
from streams.agents._writebehind import Ticker, send_records, start_before_consumer, store_data
from streams.metrics import (
    BATCH_SECONDS,
    DUPLICATES,
    EVENTS_IN,
    EVENTS_OUT,
    SNAPSHOT_ACCOUNTS,
    WINDOW_REVISIONS,
)
from streams.rules.accounting import Accountant, AccountState, Outcome
from streams.rules.inorder import IntervalColumns, Rows
from streams.rules.normalise import (
    Columns,
    Interval,
    columns_from_arrow,
    columns_from_readings,
)

__all__ = ["STATE_TABLE", "AccountStateCodec", "register"]

log = logging.getLogger(__name__)

AGENT = "accounting"
READINGS = "meter.readings"
INTERVALS = "energy.intervals"
WINDOWS = "emissions.windows"
FACTORS = "factors"
REGISTRY = "accounts.registry"
STATE_TABLE = "accounting-state"

_INTERVAL_ROWS = 20_000  # intervals and windows gathered before they are sent ...
_INTERVAL_SECONDS = 0.1  # ... or after this long, whichever comes first
_INBOX_MESSAGES = 200  # messages decoded and accounted together ...
_INBOX_SECONDS = 0.02  # ... or after this long, whichever comes first
_INBOX_FULL = 1_000  # messages held before fetching waits (each keeps its bytes alive)
_MAX_PENDING = 20_000  # messages held unacked at most (each keeps its bytes alive)
_ARROW_HEADERS = [(FORMAT_HEADER, ARROW_FORMAT)]
_JSON_HEADERS = [(FORMAT_HEADER, JSON_FORMAT)]
_UNITS = {str(k): v for k, v in CANONICAL_UNIT.items()}
_INTERVAL_SCHEMA = arrow_schema(EnergyInterval)
_READING_SCHEMA = arrow_schema(Reading)
_WINDOW_SCHEMA = arrow_schema(EmissionWindow)


class AccountStateCodec(codecs.Codec):
    """Faust codec of `AccountState`: its plain-data form as JSON (the changelog value)."""

    def _dumps(self, obj: Any) -> bytes:
        return orjson.dumps(obj.to_dict())

    def _loads(self, s: bytes) -> Any:
        return AccountState.from_dict(orjson.loads(s))


_CODEC = AccountStateCodec()
codecs.register("account_state", _CODEC)


_TS = pa.timestamp("ms", tz="UTC")
_INTERVAL_SCHEMA_BYTES = _INTERVAL_SCHEMA.serialize().to_pybytes()
_READING_SCHEMA_BYTES = _READING_SCHEMA.serialize().to_pybytes()
_WINDOW_SCHEMA_BYTES = _WINDOW_SCHEMA.serialize().to_pybytes()
_WINDOW_TEXT_SCHEMA = pa.schema(  # the records' form: timestamps as ISO text
    [pa.field(f.name, pa.string() if f.type == _TS else f.type) for f in _WINDOW_SCHEMA]
)
_EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"  # end of an Arrow IPC stream


def _ipc_stream(batches: Sequence[pa.RecordBatch]) -> bytes | None:
    """Record batches of the EnergyInterval schema as one Arrow IPC stream (None: no rows)."""
    parts = [b.serialize().to_pybytes() for b in batches if b.num_rows]
    if not parts:
        return None
    return b"".join([_INTERVAL_SCHEMA_BYTES, *parts, _EOS])


def _interval_columns_batch(ivc: IntervalColumns, accounts: list[str]) -> pa.RecordBatch:
    """The in-order lane's intervals as an EnergyInterval record batch; `accounts[i]` is
    the account of span i (rows name their span)."""
    n = len(ivc.meter_id)
    energy = pa.array(ivc.energy_type, pa.string()).dictionary_encode()
    units = pa.array([_UNITS.get(x, "") for x in energy.dictionary.to_pylist()], pa.string())
    seqs = pa.array(
        list(chain.from_iterable(zip(ivc.seq_start, ivc.seq_end, strict=True))), pa.int64()
    )
    arrays = [
        pa.array(ivc.meter_id, pa.string()),
        pa.array(accounts, pa.string()).take(pa.array(ivc.span)),
        energy.dictionary.take(energy.indices),
        pa.array(ivc.start).view(_TS),
        pa.array(ivc.end).view(_TS),
        pa.array(ivc.consumption),
        units.take(energy.indices),
        pa.array(ivc.uncertain),
        pa.nulls(n, pa.string()).fill_null(""),
        pa.ListArray.from_arrays(pa.array(np.arange(0, 2 * n + 1, 2, np.int32)), seqs),
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=_INTERVAL_SCHEMA)


def _intervals_batch(chunks: Sequence[tuple[str, Sequence[Interval]]]) -> pa.RecordBatch:
    """Accounts' intervals as one record batch (EnergyInterval schema), +1 ones only.

    `chunks`: (account_id, that account's intervals from one message). Built column by
    column (one transpose, typed arrays, the schema message serialised once): pyarrow's
    per-call cost, not the rows, is what a batch pays, so the agent gathers many
    messages' rows first. Takebacks (sign -1) are filtered out in Arrow, not row by row.
    """
    ivs = list(chain.from_iterable(rows for _, rows in chunks))
    n = len(ivs)
    (meter, et, start, end, consumption, uncertain, event, seqs, sign) = zip(*ivs, strict=True)
    counts = np.fromiter((len(rows) for _, rows in chunks), np.int64, len(chunks))
    accounts = pa.array([a for a, _ in chunks], pa.string())
    energy = pa.array(et, pa.string()).dictionary_encode()
    units = pa.array([_UNITS.get(x, "") for x in energy.dictionary.to_pylist()], pa.string())
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(np.fromiter(map(len, seqs), np.int32, n), out=offsets[1:])
    arrays = [
        pa.array(meter, pa.string()),
        accounts.take(pa.array(np.repeat(np.arange(len(chunks)), counts))),
        energy.dictionary.take(energy.indices),
        pa.array(start, pa.int64()).view(_TS),
        pa.array(end, pa.int64()).view(_TS),
        pa.array(consumption, pa.float64()),
        units.take(energy.indices),
        pa.array(uncertain, pa.bool_()),
        pa.array(event, pa.string()),
        pa.ListArray.from_arrays(
            pa.array(offsets), pa.array(list(chain.from_iterable(seqs)), pa.int64())
        ),
    ]
    batch = pa.RecordBatch.from_arrays(arrays, schema=_INTERVAL_SCHEMA)
    if -1 in sign:
        batch = batch.filter(pc.equal(pa.array(sign, pa.int8()), 1))
    return batch


def _windows_batch(windows: Sequence[dict[str, Any]]) -> bytes:
    """`EmissionWindow` records (as `emit_windows` makes them) as one Arrow IPC stream.

    Read by Arrow in one call (`from_pylist`, 3.5x a list per field here); the ISO text
    of the timestamps is cast by Arrow too, not parsed one by one."""
    rows = pa.RecordBatch.from_pylist(windows, schema=_WINDOW_TEXT_SCHEMA)
    arrays = [
        rows.column(i).cast(_TS) if f.type == _TS else rows.column(i)
        for i, f in enumerate(_WINDOW_SCHEMA)
    ]
    batch = pa.RecordBatch.from_arrays(arrays, schema=_WINDOW_SCHEMA)
    return _WINDOW_SCHEMA_BYTES + batch.serialize().to_pybytes() + _EOS


class _Gathered:
    """Outputs waiting to go out as Arrow batches of many messages' rows, per
    `meter.readings` partition: intervals (sent to the same partition number of
    `energy.intervals`) and windows (sent to their accounts' `emissions.windows` partition)."""

    def __init__(self) -> None:
        self.chunks: dict[int, list[tuple[str, list[Interval]]]] = {}
        self.batches: dict[int, list[pa.RecordBatch]] = {}  # the in-order lane's
        self.windows: dict[int, list[tuple[str, list[dict[str, Any]]]]] = {}
        self.rows = 0
        self.sent_at = time.monotonic()

    def add(self, partition: int, account_id: str, intervals: list[Interval]) -> None:
        """Keep one message's intervals of one account (takebacks included)."""
        if intervals:
            self.chunks.setdefault(partition, []).append((account_id, intervals))
            self.rows += len(intervals)

    def add_batch(self, partition: int, batch: pa.RecordBatch) -> None:
        """Keep intervals already in a record batch (the in-order lane's)."""
        if batch.num_rows:
            self.batches.setdefault(partition, []).append(batch)
            self.rows += batch.num_rows

    def add_windows(self, partition: int, account_id: str, windows: list[dict[str, Any]]) -> None:
        """Keep new or revised windows of one account."""
        if windows:
            self.windows.setdefault(partition, []).append((account_id, windows))
            self.rows += len(windows)

    def due(self) -> bool:
        """Enough rows gathered, or the oldest waited long enough."""
        return self.rows >= _INTERVAL_ROWS or (
            self.rows > 0 and time.monotonic() - self.sent_at >= _INTERVAL_SECONDS
        )

    def take(self) -> tuple[dict[int, list[pa.RecordBatch]], dict[int, list[Any]]]:
        """Everything gathered (intervals as record batches, windows), per partition;
        starts afresh."""
        batches = self.batches
        for partition, chunks in self.chunks.items():
            batches.setdefault(partition, []).append(_intervals_batch(chunks))
        windows = self.windows
        self.chunks, self.batches, self.windows, self.rows = {}, {}, {}, 0
        self.sent_at = time.monotonic()
        return batches, windows

    def forget(self, partition: int) -> None:
        """Drop a revoked partition's outputs (its new owner sends them again)."""
        for gathered in (self.chunks, self.windows):
            self.rows -= sum(len(rows) for _, rows in gathered.pop(partition, []))
        self.rows -= sum(b.num_rows for b in self.batches.pop(partition, []))


class _Arrival:
    """A fetched `meter.readings` message as the agent reads it (what Faust's Event
    would give: value, key, headers as a dict, the message)."""

    __slots__ = ("headers", "key", "message", "value")

    def __init__(self, message: Message) -> None:
        self.message = message
        self.value: bytes = message.value
        self.key: bytes | None = message.key
        self.headers = dict(message.headers or ())


class _Inbox:
    """Messages waiting to be decoded and accounted together: pyarrow's cost is per
    call, not per row, so one call over 200 messages' rows costs about what one over one
    message's does. Holds at most `_INBOX_FULL` before the fetch loop waits (`room`)."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.since = 0.0
        self._room = asyncio.Event()

    def add(self, event: Any) -> None:
        """Keep one message (in offset order)."""
        if not self.events:
            self.since = time.monotonic()
        self.events.append(event)

    def due(self) -> bool:
        """Enough messages, or the oldest waited long enough."""
        return len(self.events) >= _INBOX_MESSAGES or (
            bool(self.events) and time.monotonic() - self.since >= _INBOX_SECONDS
        )

    def full(self) -> bool:
        """As many messages as the inbox holds: fetching waits for `room`."""
        return len(self.events) >= _INBOX_FULL

    async def room(self) -> None:
        """Until the inbox is below `_INBOX_FULL` again."""
        while self.full():
            self._room.clear()
            await self._room.wait()

    def take(self, n: int) -> list[Any]:
        """The first `n` messages, in order (the rest count as waiting since then)."""
        events, self.events = self.events[:n], self.events[n:]
        if not self.full():
            self._room.set()
        return events

    def forget(self, partitions: set[int]) -> None:
        """Drop revoked partitions' messages (their new owner reads them again)."""
        self.events = [e for e in self.events if e.message.partition not in partitions]
        if not self.full():
            self._room.set()


class _Reference:
    """Factors and account regions, read whole by every worker from compacted topics."""

    def __init__(self) -> None:
        self.factors = FactorBook(load_factors())
        self.regions: dict[str, str] = {}
        self.changed_accounts: set[str] = set()  # region changes to re-examine
        self.factors_changed = False
        self.ready = asyncio.Event()


def register(app: faust.App, settings: Settings) -> None:
    """Register the accounting agent, its table and its reference-data task on `app`."""
    ref = _Reference()
    accountant = Accountant.from_settings(settings, ref.factors)
    raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw"}
    readings = app.topic(READINGS, **raw, value_serializer="raw")
    factors_dlq = app.topic(dlq_topic(FACTORS), **raw, value_serializer="raw")
    partitions = app.conf.topic_partitions
    # the changelog topic made here, not by Faust: Faust registers a table's changelog at
    # creation with serializers from its types (json), and recovery decodes with those
    changelog_topic = app.topic(
        f"{app.conf.id}-{STATE_TABLE}-changelog",
        key_type=str,
        key_serializer="raw",  # the account id as the readings carry it: same partition
        value_serializer="account_state",
        partitions=partitions,
        compacting=True,
        deleting=False,
        acks=False,
        internal=True,
        config=COMPACTION,
    )
    table = app.Table(
        STATE_TABLE,
        default=None,
        key_type=str,
        partitions=partitions,
        changelog_topic=changelog_topic,
        use_partitioner=True,
        help="per account: its meters' normalising state and its kept emission windows",
    )
    table.key_serializer = "raw"
    table.value_serializer = "account_state"
    states = store_data(table)  # account_id -> AccountState, read and written directly
    partitioner = DefaultPartitioner()

    async def send(
        topic: str, key: bytes | None, value: bytes, headers: Any, partition: int | None = None
    ) -> None:
        # straight to the producer: Faust's send_soon costs ~0.6 ms a message here, and
        # Faust flushes this producer before it commits offsets (at least once holds)
        await app.producer.send(topic, key, value, partition, None, headers)

    changelog = changelog_topic.get_topic_name()
    snapshots = _Snapshots(settings.streams.snapshot_seconds)
    gathered = _Gathered()
    inbox = _Inbox()
    window_partitions: dict[str, int] = {}  # account_id -> its emissions.windows partition

    async def window_partition(account_id: str) -> int:
        # the default partitioner, as a keyed send would use (labelling co-partitions the
        # windows with accounts.registry); cached: aiokafka's murmur2 is Python
        partition = window_partitions.get(account_id)
        if partition is None:
            parts = sorted(await app.producer._ensure_producer().partitions_for(WINDOWS))
            partition = partitioner(account_id.encode(), parts, parts)
            window_partitions[account_id] = partition
        return partition

    async def send_outputs() -> None:
        """Send the gathered intervals and windows: Arrow batches, one per partition."""
        batches, windows = gathered.take()
        for partition, pieces in batches.items():
            value = _ipc_stream(pieces)
            if value is not None:
                await send(INTERVALS, None, value, _ARROW_HEADERS, partition)
                EVENTS_OUT.labels(agent=AGENT, topic=INTERVALS).inc()
        targets: dict[int, list[dict[str, Any]]] = {}
        for account_windows in windows.values():
            for account_id, ws in account_windows:
                targets.setdefault(await window_partition(account_id), []).extend(ws)
        for partition, ws in targets.items():
            await send(WINDOWS, None, _windows_batch(ws), _ARROW_HEADERS, partition)
            EVENTS_OUT.labels(agent=AGENT, topic=WINDOWS).inc(len(ws))

    async def snapshot() -> None:
        """Write changed accounts' state, then ack the messages it covers (caller holds
        `snapshots.lock`).

        Outputs first: a state covering a message must never be stored before that
        message's intervals and windows are, or a restart would skip the message and
        lose them. Each record goes to the changelog partition numbered like the
        account's `meter.readings` partition, always: recovery reads changelog partition
        p for readings partition p, and the producer's partitioner would count the
        changelog's partitions, which differ when `meter.readings` has another count.
        """
        dirty, pending = snapshots.take()  # accounted messages only: the inbox's wait
        if not dirty and not pending:
            return
        try:
            await send_outputs()
            await app.producer.flush()
            records = (
                (account_id.encode(), _CODEC.dumps(state), partition)
                for account_id, partition in dirty.items()
                if (state := states.get(account_id)) is not None
            )
            await send_records(app, changelog, records)
            await app.producer.flush()
        except BaseException:
            snapshots.restore(dirty, pending)  # written again by the next snapshot
            raise
        ack = app.consumer.ack
        for message in pending:
            ack(message)
        SNAPSHOT_ACCOUNTS.labels(agent=AGENT).inc(len(dirty))

    def emit_windows(
        account_id: str, partition: int, windows: list[dict[str, Any]], cause: str
    ) -> None:
        gathered.add_windows(partition, account_id, windows)
        for w in windows:
            if w["revision"] > 1:
                WINDOW_REVISIONS.labels(energy_type=w["energy_type"], cause=cause).inc()

    async def reject(
        error: ContractError, value: bytes, key: bytes | None, headers: list[tuple[str, bytes]],
        partition: int | None, offset: int | None,
    ) -> None:  # fmt: skip
        extra = dlq_headers(error, topic=READINGS, partition=partition, offset=offset)
        await send(dlq_topic(READINGS), key, value, headers + extra)

    async def account(entry: _Entry, state: AccountState, outcome: Outcome | None) -> None:
        """One message's batch of one account: `outcome` when the lane took it, else
        `process` runs here."""
        event, fmt, account_id, cols, _a, _b, rows = entry
        msg = event.message
        if outcome is None:
            part = cols if cols is not None else columns_from_arrow(rows)
            outcome = accountant.process(state, part, ref.regions.get(account_id))
            gathered.add(msg.partition, account_id, outcome.normalised.intervals)
        state.offset = msg.offset
        snapshots.dirty[account_id] = msg.partition
        result = outcome.normalised
        emit_windows(account_id, msg.partition, outcome.windows, "late_data")
        for et, n in result.duplicates.items():
            DUPLICATES.labels(energy_type=et).inc(n)
        key = account_id.encode()
        for row, error in result.rejected:
            if fmt == ARROW_FORMAT:
                value = _one_row(rows, row)
                await reject(error, value, key, _ARROW_HEADERS, msg.partition, msg.offset)
            else:
                await reject(error, event.value, key, _JSON_HEADERS, msg.partition, msg.offset)

    ready = asyncio.Event()  # the inbox is due: account it now, not at the next tick

    def arrive(message: Message) -> None:
        """Keep a fetched message for the inbox (`account_inbox` passes it on to the
        snapshot that acks it, once accounted)."""
        inbox.add(_Arrival(message))
        if inbox.due():
            ready.set()

    # meter.readings comes from the fetch loop in bulk (`_bulk`), not through the stream
    deliver_in_bulk(app, READINGS, arrive, inbox.full, inbox.room)

    @app.agent(readings, name=AGENT)
    async def accounting(stream: faust.StreamT) -> None:
        # subscribes the worker to meter.readings (Faust subscribes to its agents'
        # topics); what the stream would deliver comes by `arrive`. Iterated from the
        # start: a stream not iterated yet loses what Faust delivers to it
        async for event in stream.noack().events():
            arrive(event.message)

    async def quiet_snapshot() -> None:
        """Snapshot when due or when no message came for a while (a stream gone quiet,
        or Faust waiting for its streams to drain before a rebalance or a stop)."""
        if snapshots.due() or snapshots.quiet():
            async with snapshots.lock:
                await snapshot()

    async def work() -> None:
        """Account the inbox when it is due (or told it is) and send what is gathered,
        snapshot when that is due; the caller waits at most `_INBOX_SECONDS` between."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(ready.wait(), _INBOX_SECONDS)
        ready.clear()
        while inbox.due() or gathered.due() or snapshots.due():
            async with snapshots.lock:
                if snapshots.due():
                    await snapshot()
                    continue
                await account_inbox()
                if gathered.due():
                    await send_outputs()

    # not app.timers: those end when the app starts stopping, and Faust's stop then
    # waits for every message to be acked, which only a snapshot does
    start_before_consumer(app, Ticker(0.2, quiet_snapshot))
    start_before_consumer(app, Ticker(0, work))

    @app.on_partitions_revoked.connect
    async def forget_revoked(sender: Any, revoked: set[Any], **_: Any) -> None:
        """Leave revoked accounts to their new owner: no snapshot of them from here."""
        gone = {tp.partition for tp in revoked if tp.topic == READINGS}
        snapshots.forget(gone)
        inbox.forget(gone)
        for partition in gone:
            gathered.forget(partition)  # the new owner sends them again

    async def account_inbox() -> None:
        """Decode the inbox's messages together and account them in order (caller holds
        `snapshots.lock`).

        In rounds: each account's first message, then each one's second, and so on
        (messages of different accounts touch different state, so only each account's
        own order matters); a round's in-order batches go through the lane together."""
        events = inbox.take(_INBOX_MESSAGES)
        if not events:
            return
        # acked by the next snapshot: only what has been accounted, never what arrived
        # while a snapshot was being written
        snapshots.pending.extend(e.message for e in events)
        started = time.perf_counter()
        n = 0
        entries: list[_Entry] = []
        decoded_events, shared = _decode(events)
        for event, fmt, decoded in decoded_events:
            msg = event.message
            if isinstance(decoded, ContractError):
                await reject(decoded, event.value, event.key, [], msg.partition, msg.offset)
                n += 1
                continue
            for account_id, cols, a, b, rows in decoded:
                entries.append((event, fmt, account_id, cols, a, b, rows))
                n += b - a
        while entries:
            seen: set[str] = set()
            now: list[_Entry] = []
            later: list[_Entry] = []
            for entry in entries:
                (later if entry[2] in seen else now).append(entry)
                seen.add(entry[2])
            await account_round(now, shared)
            entries = later
        EVENTS_IN.labels(agent=AGENT).inc(n)
        BATCH_SECONDS.labels(agent=AGENT).observe(time.perf_counter() - started)

    async def account_round(entries: list[_Entry], shared: Rows | None) -> None:
        """Account messages of distinct accounts: the in-order lane for the batches of
        the inbox's shared columns, `process` for the rest."""
        todo: list[tuple[_Entry, AccountState]] = []
        for entry in entries:
            event, _fmt, account_id, *_ = entry
            state = states.get(account_id)
            if state is None:
                state = states[account_id] = AccountState(account_id)
            elif event.message.offset <= state.offset:
                continue  # already in the state recovered from the changelog: a re-delivery
            todo.append((entry, state))
        outcomes: list[Outcome | None] = [None] * len(todo)
        if shared is not None:
            at = [i for i, (e, _) in enumerate(todo) if e[3] is None]
            spans = [
                (todo[i][1], todo[i][0][4], todo[i][0][5], ref.regions.get(todo[i][0][2]))
                for i in at
            ]
            taken, ivc = accountant.process_spans(spans, shared)
            for i, outcome in zip(at, taken, strict=True):
                outcomes[i] = outcome
            if ivc is not None:
                lane_intervals(ivc, [todo[i] for i in at])
        for (entry, state), outcome in zip(todo, outcomes, strict=True):
            await account(entry, state, outcome)

    def lane_intervals(ivc: IntervalColumns, spans: list[tuple[_Entry, AccountState]]) -> None:
        """Gather the lane's intervals, split by their messages' partitions."""
        batch = _interval_columns_batch(ivc, [e[2] for e, _ in spans])
        partitions = [e[0].message.partition for e, _ in spans]
        if len(set(partitions)) == 1:
            gathered.add_batch(partitions[0], batch)
            return
        of_row = np.array(partitions, np.int64)[ivc.span]
        for partition in sorted(set(partitions)):
            gathered.add_batch(partition, batch.filter(pa.array(of_row == partition)))

    def _partition(account_id: str) -> int:
        """The account's `meter.readings` partition (the producers' default partitioner)."""
        n = app.consumer.topic_partitions(READINGS) or partitions
        return partitioner(account_id.encode(), list(range(n)), list(range(n)))

    def _owned(account_id: str) -> bool:
        # only accounts whose partition this worker is assigned (standbys hold others too)
        partition = _partition(account_id)
        assignment = app.consumer.assignment()
        return any(tp.topic == READINGS and tp.partition == partition for tp in assignment)

    async def recompute() -> None:
        """Re-examine the kept windows of this worker's accounts (factors or regions changed)."""
        everyone = ref.factors_changed
        ref.factors_changed = False
        accounts = list(table.keys()) if everyone else list(ref.changed_accounts)
        ref.changed_accounts.clear()
        for account_id in accounts:
            state = table.get(account_id)
            if state is None or not _owned(account_id):
                continue
            async with snapshots.lock:
                # what came before the revision first (all of it: a call takes 200)
                for _ in range(0, len(inbox.events), _INBOX_MESSAGES):
                    await account_inbox()
                windows = accountant.recompute(state, ref.regions.get(account_id))
                if windows:
                    partition = _partition(account_id)
                    snapshots.dirty[account_id] = partition
                    emit_windows(account_id, partition, windows, "factor_revision")

    async def follow() -> None:
        """After the first read: apply new reference records, re-examine what they change."""
        pending = ref.factors_changed or ref.changed_accounts
        if pending and app.consumer is not None and app.consumer.assignment():
            await recompute()

    def _apply_reference(topic: str, record: Any) -> None:
        if record.value is None:
            return  # a tombstone
        try:
            if topic == FACTORS:
                factor = decode_json(EmissionFactor, record.value)
                if ref.factors.add(factor) and ref.ready.is_set():
                    ref.factors_changed = True
            else:
                acct = decode_json(Account, record.value)
                if ref.regions.get(acct.account_id) != acct.region:
                    ref.regions[acct.account_id] = acct.region
                    if ref.ready.is_set():
                        ref.changed_accounts.add(acct.account_id)
        except ContractError as exc:
            if topic == FACTORS:
                factors_dlq.send_soon(
                    key=record.key,
                    value=record.value,
                    headers=dlq_headers(
                        exc, topic=FACTORS, partition=record.partition, offset=record.offset
                    ),
                )
            else:  # the registry's owner rejects its bad records; here it is only skipped
                log.warning("accounts.registry offset %s skipped: %s", record.offset, exc)

    start_before_consumer(app, _Loader(app, settings, _apply_reference, ref, follow))


class _Loader(mode.Service):
    """Reads `factors` and `accounts.registry` to their end before the consumer starts,
    then follows them.

    Started ahead of Faust's consumer (see `start_before_consumer`): an agent that
    waited for this data inside its stream would be blocked across the start-up
    rebalance, and Faust drops messages fetched while a stream is blocked there.
    """

    def __init__(
        self, app: faust.App, settings: Settings, apply: Any, ref: _Reference, follow: Any
    ) -> None:
        super().__init__()
        self._app = app
        self._settings = settings
        self._apply = apply
        self._ref = ref
        self._follow = follow
        self._consumer: AIOKafkaConsumer | None = None

    async def on_start(self) -> None:
        app = self._app
        consumer = self._consumer = AIOKafkaConsumer(
            bootstrap_servers=",".join(f"{u.host}:{u.port}" for u in app.conf.broker),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **self._settings.kafka.client_options(),
        )
        await consumer.start()
        await consumer.topics()  # fetches the metadata partitions_for_topic reads
        tps = []
        for topic in (FACTORS, REGISTRY):
            for p in sorted(consumer.partitions_for_topic(topic) or ()):
                tps.append(TopicPartition(topic, p))
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps) if tps else {}
        while not await _caught_up(consumer, ends):
            await self._read(consumer)
        self._ref.ready.set()  # readings may be accounted now
        log.info(
            "reference data read: %d factors, %d regions",
            len(self._ref.factors),
            len(self._ref.regions),
        )

    async def _read(self, consumer: AIOKafkaConsumer) -> None:
        batches = await consumer.getmany(timeout_ms=200, max_records=5000)
        for tp, records in batches.items():
            for record in records:
                self._apply(tp.topic, record)

    @mode.Service.task
    async def _following(self) -> None:
        assert self._consumer is not None
        while not self.should_stop:
            await self._read(self._consumer)
            await self._follow()

    async def on_stop(self) -> None:
        if self._consumer is not None:
            # aiokafka's group-less consumer may raise CancelledError from stop()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self._consumer.stop()


class _Snapshots:
    """What the next snapshot writes (changed accounts) and then acks (their messages).

    Like Kafka Streams' record cache: an account that gets many messages between two
    snapshots (a catch-up, a replay) has its state written once, not once a message.
    Outputs are sent as messages are processed; only state and commits wait.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.dirty: dict[str, int] = {}  # account_id -> its meter.readings partition
        self.pending: list[Message] = []  # to ack after it
        self.lock = asyncio.Lock()
        self._last = time.monotonic()
        self._seen = 0  # pending count at the last quiet() check

    def due(self) -> bool:
        """Something to write and `interval` seconds since the last snapshot."""
        return bool(self.pending or self.dirty) and (
            time.monotonic() - self._last >= self.interval or len(self.pending) >= _MAX_PENDING
        )

    def quiet(self) -> bool:
        """Something to write and no new message since the previous call."""
        seen, self._seen = self._seen, len(self.pending)
        return bool(self.pending or self.dirty) and seen == len(self.pending)

    def take(self) -> tuple[dict[str, int], list[Message]]:
        """The accounts and events of the next snapshot; resets the collection."""
        dirty, pending = self.dirty, self.pending
        self.dirty, self.pending = {}, []
        self._last = time.monotonic()
        self._seen = 0
        return dirty, pending

    def restore(self, dirty: dict[str, int], pending: list[Message]) -> None:
        """Put back what a failed snapshot took, ahead of what came since."""
        self.dirty = {**dirty, **self.dirty}
        self.pending = pending + self.pending

    def forget(self, partitions: set[int]) -> None:
        """Drop revoked partitions' accounts and events (their new owner re-reads them)."""
        self.dirty = {a: p for a, p in self.dirty.items() if p not in partitions}
        self.pending = [m for m in self.pending if m.partition not in partitions]


async def _caught_up(consumer: AIOKafkaConsumer, ends: dict[Any, int]) -> bool:
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return False
    return True


#: per message and account: (account_id, its columns or None for a span of the shared
#: `Rows`, first row, end row, the message's rows as Arrow)
_Decoded = list[tuple[str, Columns | None, int, int, pa.RecordBatch | None]]
#: a message's batch of one account, as the agent accounts it: (event, format,
#: account_id, columns or None, first row, end row, the message's rows as Arrow)
_Entry = tuple[Any, bytes, str, Columns | None, int, int, pa.RecordBatch | None]


def _decode(
    events: Sequence[Any],
) -> tuple[list[tuple[Any, bytes, _Decoded | ContractError]], Rows | None]:
    """Each message's readings by account (normally one account: the message key's), or
    why the whole message is rejected; in message order. And the shared `Rows` of the
    plain messages (None when there is none).

    Plain messages (one record batch of the reading schema, keyed by their account, as
    our collectors send them) are decoded together, as one `Rows` for the in-order
    lane, and each is a span of its rows (columns None: `columns_from_arrow` of the
    message's own batch when the lane does not take it). Anything else has columns of
    its own (rows 0 to its length).
    """
    out: list[tuple[Any, bytes, _Decoded | ContractError]] = []
    plain: list[tuple[int, pa.RecordBatch]] = []  # (index in out, its batch)
    for event in events:
        value: bytes = event.value
        fmt = (event.headers or {}).get(FORMAT_HEADER, JSON_FORMAT)
        if isinstance(fmt, str):
            fmt = fmt.encode()
        decoded: _Decoded | ContractError
        try:
            if fmt == ARROW_FORMAT:
                batch = _plain_batch(value) if event.key else None
                if batch is not None:
                    plain.append((len(out), batch))
                    decoded = []  # filled in below
                else:
                    decoded = _by_account(value, event.key)
            elif fmt == JSON_FORMAT:
                reading = decode_json(Reading, value)
                decoded = [(reading.account_id, columns_from_readings([reading]), 0, 1, None)]
            else:
                raise ContractError(ReasonCode.BAD_ENCODING, f"unknown {FORMAT_HEADER} {fmt!r}")
        except ContractError as exc:
            decoded = exc
        except (pa.ArrowInvalid, OSError, KeyError) as exc:
            decoded = ContractError(ReasonCode.BAD_ENCODING, f"bad Arrow batch: {exc}")
        out.append((event, fmt, decoded))
    if not plain:
        return out, None
    table = pa.Table.from_batches([b for _, b in plain], schema=_READING_SCHEMA)
    shared = Rows.from_arrow(table)  # the reading schema: every column is there
    accounts = table.column("account_id").to_pylist()
    start = 0
    for at, batch in plain:
        end = start + batch.num_rows
        event, fmt, _ = out[at]
        key = event.key.decode()
        if accounts[start:end].count(key) == end - start:
            out[at] = (event, fmt, [(key, None, start, end, batch)])
        else:  # rows of another account than the key's, or of several
            out[at] = (event, fmt, _accounts_of(batch, event.key))
        start = end
    return out, shared


def _plain_batch(value: bytes) -> pa.RecordBatch | None:
    """The one record batch of an Arrow stream in the reading schema, or None when the
    message is anything else (the general path, `_by_account`, reads that)."""
    if not value.startswith(_READING_SCHEMA_BYTES):
        return None
    reader = pa.BufferReader(value)
    reader.seek(len(_READING_SCHEMA_BYTES))
    message = pa.ipc.read_message(reader)
    if len(value) - reader.tell() not in (0, len(_EOS)) or message.type != "record batch":
        return None  # more than one batch: the general path
    return pa.ipc.read_record_batch(message, _READING_SCHEMA)


def _by_account(value: bytes, key: bytes | None) -> _Decoded:
    """An Arrow message's rows by account (one account, normally: the message key's)."""
    out: _Decoded = []
    for batch in pa.ipc.open_stream(value):
        out.extend(_accounts_of(batch, key))
    return out


def _accounts_of(batch: pa.RecordBatch, key: bytes | None) -> _Decoded:
    accounts = batch.column("account_id").to_pylist()
    first = accounts[0] if accounts else (key.decode() if key else "")
    if all(a == first for a in accounts):
        return [(first or "", columns_from_arrow(batch), 0, batch.num_rows, batch)]
    out: _Decoded = []
    for account_id in dict.fromkeys(accounts):  # rare: a batch of several accounts
        rows = [i for i, a in enumerate(accounts) if a == account_id]
        part = batch.take(pa.array(rows, pa.int64()))
        out.append((account_id or "", columns_from_arrow(part), 0, part.num_rows, part))
    return out


def _one_row(rows: pa.RecordBatch, row: int) -> bytes:
    """Row `row` of a batch as a one-row Arrow IPC stream (a DLQ record, verbatim)."""
    part = rows.slice(row, 1)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, part.schema) as writer:
        writer.write_batch(part)
    return sink.getvalue().to_pybytes()
