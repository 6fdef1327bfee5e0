"""The ClickHouse writer: Kafka records in, idempotent batches out.

- Each record is decoded against its contract (`schemas.codec.decode_json`); a bad one
  raises `ContractError` so the consumer can send it to the topic's `.dlq`. An Arrow IPC
  batch of records is decoded row by row: its good rows are taken, its bad ones returned
  (each to the `.dlq` alone), an unreadable batch raises.
- Rows are gathered per table and per Kafka partition. A batch is due when it holds
  `batch_rows` rows or its oldest row is `batch_seconds` old.
- `store_pending` writes the batch: one INSERT per table with an
  `insert_deduplication_token` made of its topic/partition/first-last offsets, so a retry
  after a lost answer, or a replay of the same offsets after a crash, stores nothing
  twice. Row keys are deterministic (the tables' ORDER BY are contract fields, reference
  rows take the Kafka timestamp as `updated_at`), so even a replay cut into different
  batches collapses in ReplacingMergeTree: FINAL reads and the rollups count it once.
- It returns the offsets to commit (`last + 1` per partition); the consumer commits
  them only after this returned, never before.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pyarrow as pa

from schemas.codec import (
    ARROW_FORMAT,
    arrow_column,
    arrow_schema,
    checked_arrow,
    message_format,
    rows_from_message,
    validator,
)
from schemas.contracts import (
    Account,
    AccountLabel,
    Benchmark,
    BenefitPoints,
    Contract,
    Denominator,
    EmissionFactor,
    EmissionWindow,
    EnergyInterval,
)
from schemas.errors import ContractError, ReasonCode
from sinks.metrics import BATCH_ROWS, BATCH_SECONDS, ROWS
from sinks.store import Store

__all__ = [
    "SINK_TOPICS",
    "TableSpec",
    "Writer",
    "apply_retention",
    "dedup_token",
    "utc_offset_minutes",
]


@dataclass(frozen=True)
class TableSpec:
    """Where a topic's records go: the contract, the table and its columns."""

    contract: type[Contract]
    table: str
    columns: tuple[str, ...]
    #: extra columns the writer fills (not contract fields)
    extra: tuple[str, ...] = ()

    @property
    def columnar(self) -> bool:
        """Arrow batches of this topic are stored as columns (`Writer.add`); reference
        topics (`updated_at`, the registry's time zones) go row by row: they are small."""
        return self.extra in ((), ("utc_offset_minutes",))

    @property
    def arrow_schema(self) -> pa.Schema:
        """The columns inserted, as Arrow: the contract's, then the extra ones."""
        schema = arrow_schema(self.contract)
        for name in self.extra:
            schema = schema.append(pa.field(name, _EXTRA_TYPES[name]))
        return schema


_EXTRA_TYPES = {"utc_offset_minutes": pa.int16(), "updated_at": pa.timestamp("ms", tz="UTC")}


def _fields(cls: type[Contract]) -> tuple[str, ...]:
    return tuple(cls._options.fields)


#: the topics the sink consumes and where each goes (column names = contract fields)
SINK_TOPICS: dict[str, TableSpec] = {
    "energy.intervals": TableSpec(EnergyInterval, "energy_intervals", _fields(EnergyInterval)),
    "emissions.windows": TableSpec(
        EmissionWindow, "emissions_15m", _fields(EmissionWindow), ("utc_offset_minutes",)
    ),
    "accounts.labels": TableSpec(AccountLabel, "account_labels", _fields(AccountLabel)),
    "benefit.points": TableSpec(BenefitPoints, "benefit_points", _fields(BenefitPoints)),
    "accounts.registry": TableSpec(Account, "accounts", _fields(Account), ("updated_at",)),
    "accounts.denominators": TableSpec(
        Denominator, "denominators", _fields(Denominator), ("updated_at",)
    ),
    "benchmarks": TableSpec(Benchmark, "benchmarks", _fields(Benchmark), ("updated_at",)),
    "factors": TableSpec(
        EmissionFactor, "emission_factors", _fields(EmissionFactor), ("updated_at",)
    ),
}


@lru_cache(maxsize=32)
def _decoder(cls: type[Contract]) -> Callable[[bytes], dict[str, Any]]:
    """A fast decoder of one contract's JSON (`schemas.codec.validator`)."""
    validate = validator(cls)
    return lambda data: validate(_loads(data))


def _loads(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ContractError(ReasonCode.BAD_ENCODING, f"not JSON: {exc}") from None


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@lru_cache(maxsize=65536)  # per window row; windows share few instants
def utc_offset_minutes(ts: datetime, timezone: str) -> int:
    """Minutes the local calendar of `timezone` is ahead of UTC at instant `ts`."""
    offset = ts.astimezone(_zone(timezone)).utcoffset() or timedelta(0)
    return int(offset.total_seconds() // 60)


def dedup_token(table: str, ranges: Iterable[tuple[str, int, int, int]]) -> str:
    """The insert deduplication token of one table's rows from (topic, partition, first,
    last) offset ranges: the same offsets give the same token, so they are stored once."""
    return table + "/" + ",".join(f"{t}/{p}/{a}-{b}" for t, p, a, b in sorted(ranges))


@dataclass
class _Part:
    """Rows of one table from one topic partition, with their offset range: rows one by
    one, and whole Arrow batches (`SINK_TOPICS[...].arrow_schema`) as they came."""

    first: int
    last: int
    rows: list[list[Any]] = field(default_factory=list)
    tables: list[pa.Table] = field(default_factory=list)


class Writer:
    """Batches Kafka records per table and stores them idempotently in ClickHouse."""

    def __init__(
        self,
        store: Store,
        *,
        batch_rows: int = 50_000,
        batch_seconds: float = 1.0,
        timezone: str = "Asia/Shanghai",
        topics: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`topics` maps the topic names consumed to the standard names of SINK_TOPICS
        (default: the standard names themselves)."""
        self.store = store
        self.batch_rows = batch_rows
        self.batch_seconds = batch_seconds
        self.timezone = timezone
        self.topics = dict(topics) if topics is not None else {t: t for t in SINK_TOPICS}
        self._clock = clock
        self._parts: dict[tuple[str, str, int], _Part] = {}
        self._offsets: dict[tuple[str, int], tuple[int, int]] = {}
        self._rows = 0
        self._since: float | None = None
        #: account_id -> its time zone, from the registry (stored and passing through)
        self.zones: dict[str, str] = {}

    # -- reading ---------------------------------------------------------------------

    def load_zones(self) -> int:
        """Load accounts' time zones from the `accounts` table; returns how many."""
        result = self.store.query(
            "SELECT account_id, argMax(timezone, updated_at) FROM accounts GROUP BY account_id"
        )
        self.zones.update({a: z for a, z in result.result_rows if z})
        return len(self.zones)

    def _zone_of(self, account_id: str) -> str:
        return self.zones.get(account_id, self.timezone)

    def add(
        self,
        topic: str,
        partition: int,
        offset: int,
        value: bytes | None,
        timestamp_ms: int,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> list[ContractError]:
        """Decode one record (or an Arrow IPC batch of records, by its `content-type`
        header) and add its rows to the pending batch; returns the errors of a batch's
        bad rows (each with its `row`: the caller sends that row alone to the `.dlq`).

        Raises ContractError for a record that breaks its contract, or a batch that cannot
        be read at all (the caller sends the message to the `.dlq`); its offset still
        counts as handled.
        """
        self._track(topic, partition, offset)
        standard = self.topics.get(topic)
        if standard is None:
            raise ContractError(ReasonCode.BAD_ENCODING, f"the sink does not consume {topic}")
        spec = SINK_TOPICS[standard]
        if value is None:
            raise ContractError(ReasonCode.BAD_ENCODING, "empty record (tombstone)")
        if message_format(headers) != ARROW_FORMAT:
            record = _decoder(spec.contract)(value)
            self._add_row(spec, standard, topic, partition, offset, record, timestamp_ms)
            return []
        if spec.columnar:
            table = checked_arrow(spec.contract, value)
            if table is not None:  # every row good: stored as columns
                self._add_table(spec, standard, topic, partition, offset, table)
                return []
        rejected: list[ContractError] = []
        for row in rows_from_message(spec.contract, value, headers):
            if isinstance(row, ContractError):
                if row.row is None:
                    raise row  # not an Arrow IPC stream at all: the message is rejected
                rejected.append(row)
            else:
                self._add_row(spec, standard, topic, partition, offset, row, timestamp_ms)
        return rejected

    def _add_table(
        self,
        spec: TableSpec,
        standard: str,
        topic: str,
        partition: int,
        offset: int,
        table: pa.Table,
    ) -> None:
        if standard == "emissions.windows":
            zone_of = self._zone_of
            starts = arrow_column(table, "window_start")  # cached datetimes
            accounts = arrow_column(table, "account_id")
            pairs = zip(starts, accounts, strict=True)
            offsets = [utc_offset_minutes(ts, zone_of(a)) for ts, a in pairs]
            kind = _EXTRA_TYPES["utc_offset_minutes"]
            table = table.append_column(
                pa.field("utc_offset_minutes", kind), pa.array(offsets, kind)
            )
        self._part(spec, topic, partition, offset).tables.append(table)
        self._rows += table.num_rows

    def _part(self, spec: TableSpec, topic: str, partition: int, offset: int) -> _Part:
        key = (spec.table, topic, partition)
        part = self._parts.get(key)
        if part is None:
            part = self._parts[key] = _Part(offset, offset)
        part.last = max(part.last, offset)
        part.first = min(part.first, offset)
        return part

    def _add_row(
        self,
        spec: Any,
        standard: str,
        topic: str,
        partition: int,
        offset: int,
        record: dict[str, Any],
        timestamp_ms: int,
    ) -> None:
        row = [record[name] for name in spec.columns]
        if standard == "emissions.windows":
            row.append(
                utc_offset_minutes(record["window_start"], self._zone_of(record["account_id"]))
            )
        elif spec.extra == ("updated_at",):
            # the Kafka timestamp: the same on a replay, so a replayed row is the same row
            row.append(datetime.fromtimestamp(timestamp_ms / 1000, UTC))
            if standard == "accounts.registry":
                zone = record["timezone"]
                try:
                    _zone(zone)
                except (ZoneInfoNotFoundError, ValueError):
                    raise ContractError(
                        ReasonCode.BAD_ENUM, f"unknown time zone {zone!r}", "timezone"
                    ) from None
                self.zones[record["account_id"]] = zone
        self._part(spec, topic, partition, offset).rows.append(row)
        self._rows += 1

    def _track(self, topic: str, partition: int, offset: int) -> None:
        if self._since is None:
            self._since = self._clock()
        first, last = self._offsets.get((topic, partition), (offset, offset))
        self._offsets[(topic, partition)] = (min(first, offset), max(last, offset))

    # -- state -----------------------------------------------------------------------

    @property
    def pending_rows(self) -> int:
        """Rows waiting to be stored."""
        return self._rows

    @property
    def pending_offsets(self) -> dict[tuple[str, int], tuple[int, int]]:
        """(topic, partition) -> (first, last) offset handled and not yet stored."""
        return dict(self._offsets)

    def due(self) -> bool:
        """The batch should be stored now: full, or its oldest record is old enough."""
        if self._since is None:
            return False
        return self._rows >= self.batch_rows or self._clock() - self._since >= self.batch_seconds

    def clear(self) -> None:
        """Forget the pending batch (it will be read again from Kafka)."""
        self._parts.clear()
        self._offsets.clear()
        self._rows = 0
        self._since = None

    # -- writing ---------------------------------------------------------------------

    def store_pending(self) -> dict[tuple[str, int], int]:
        """Store the pending batch; returns the offsets to commit, {(topic, partition): next}.

        Blocking. On a ClickHouse error the batch stays pending and the error is raised:
        calling again retries it with the same deduplication tokens.
        """
        tables: dict[str, list[tuple[tuple[str, str, int], _Part]]] = {}
        for key, part in sorted(self._parts.items()):
            if part.rows or part.tables:
                tables.setdefault(key[0], []).append((key, part))
        for table, parts in tables.items():
            # one INSERT per table and batch (each INSERT has a fixed cost in the engine)
            spec = SINK_TOPICS[self.topics[parts[0][0][1]]]
            rows = [row for _key, part in parts for row in part.rows]
            batches = [t for _key, part in parts for t in part.tables]
            token = dedup_token(table, [(k[1], k[2], p.first, p.last) for k, p in parts])
            settings = {"insert_deduplication_token": token}
            started = time.perf_counter()
            if batches:  # columns as they came, the odd rows with them: one INSERT still
                schema = spec.arrow_schema
                if rows:
                    batches.append(_rows_table(rows, schema))
                arrow = pa.concat_tables([t.cast(schema) for t in batches])
                self.store.insert_arrow(table, arrow, settings=settings)
            else:
                self.store.insert(
                    table, rows, column_names=[*spec.columns, *spec.extra], settings=settings
                )
            count = len(rows) + sum(t.num_rows for t in batches)
            BATCH_SECONDS.labels(table=table).observe(time.perf_counter() - started)
            BATCH_ROWS.labels(table=table).observe(count)
            ROWS.labels(table=table).inc(count)
            for _key, part in parts:
                # stored: a retry of the other tables does not send these again
                part.rows = []
                part.tables = []
        commit = {tp: last + 1 for tp, (_first, last) in self._offsets.items()}
        self.clear()
        return commit


def _rows_table(rows: list[list[Any]], schema: pa.Schema) -> pa.Table:
    """Rows (lists in `schema` order) as an Arrow table of `schema`."""
    columns = list(zip(*rows, strict=True))
    return pa.Table.from_arrays(
        [pa.array(c, f.type) for c, f in zip(columns, schema, strict=True)], schema=schema
    )


def apply_retention(store: Store, days: int) -> str:
    """Set the TTL of the raw `energy_intervals` to `days` (0: keep forever); returns what it did.

    Done only when it differs from the table's current TTL: changing a TTL rewrites parts.
    """
    days = int(days)  # an int, so formatting it into the DDL cannot inject anything
    result = store.query(
        "SELECT engine_full FROM system.tables WHERE database = currentDatabase() "
        "AND name = 'energy_intervals'"
    )
    engine = result.result_rows[0][0] if result.result_rows else ""
    wanted = f"toIntervalDay({days})"
    if days <= 0:
        if "TTL" not in engine:
            return "no TTL"
        store.command("ALTER TABLE energy_intervals REMOVE TTL")
        return "TTL removed"
    if wanted in engine.replace(" ", ""):
        return f"TTL {days} days"
    store.command(
        f"ALTER TABLE energy_intervals MODIFY TTL toDateTime(`start`) + toIntervalDay({days})"
    )
    return f"TTL set to {days} days"
