"""Normalise: readings of one account's meters → energy intervals (pure, no I/O).

The rules (issue 4), per meter:

1. A cumulative meter's consumption between consecutive readings (by `ts`) is the
   difference of their values (the interval `[previous ts, ts)`).
2. Same `meter_id` and `ts` as a kept reading: same value → duplicate (ignored,
   counted); different value → rejected, `conflicting_duplicate`.
3. A value lower than the previous one: with `counter_max`, a rollover
   (`counter_max − previous + current`, event "rollover"); without, a meter reset:
   the interval's consumption is the current value (event "reset").
4. `quality: bad` → rejected, `bad_quality`; `uncertain` is used and flags the
   intervals it ends or starts.
5. A reading older than the meter's latest but within the grace period is placed
   where it belongs: the interval it falls in is taken back (an interval with
   sign −1) and replaced by the two halves; older than the grace period → `too_late`.
6. `kind: interval` readings carry their own consumption over `[period_start, ts)`.
7. NaN/infinite/negative values, unknown units or energy types → rejected with their
   reason code; values convert to the energy type's canonical unit.

State is plain data (`MeterState`, held in an `AccountState` by
`streams.rules.accounting`), so the live agent keeps it in a Faust table and
`carbon-accounts replay` in a dict, with the same functions.

Times are integer milliseconds since the epoch, UTC, throughout.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from schemas.contracts import Kind, Quality
from schemas.errors import ContractError, ReasonCode
from schemas.units import conversion_factor

__all__ = [
    "Columns",
    "Interval",
    "MeterState",
    "NormaliseResult",
    "columns_from_arrow",
    "columns_from_readings",
    "normalise",
    "pair_consumption",
]

_TS_MS = pa.timestamp("ms", tz="UTC")
_GOOD = Quality.GOOD.value
_UNCERTAIN = Quality.UNCERTAIN.value
_BAD = Quality.BAD.value
_CUMULATIVE = Kind.CUMULATIVE.value
_INTERVAL = Kind.INTERVAL.value

#: (meter_id, energy_type, start_ms, end_ms, consumption, uncertain, event, seqs, sign)
#: sign is +1 for an interval that now holds, −1 for one taken back by a late reading.
Interval = tuple[str, str, int, int, float, bool, str, tuple[int, ...], int]


@dataclass(slots=True)
class MeterState:
    """What normalising remembers of one meter (values in canonical units).

    `readings`: kept cumulative readings `(ts_ms, value, seq, uncertain)` sorted by ts:
    those within the grace period of `last_ts`, plus the latest one before it (the
    anchor a late reading may follow). `periods`: kept interval readings
    `{ts_ms: value}` for duplicate detection.
    """

    energy_type: str
    last_ts: int = -(2**62)
    counter_max: float | None = None
    # tuples, not lists: never changed in place, and a tuple of numbers is left alone by
    # the garbage collector (a worker holds millions of them)
    readings: list[tuple[Any, ...]] = field(default_factory=list)
    periods: dict[int, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the Faust changelog carries this)."""
        return {
            "energy_type": self.energy_type,
            "last_ts": self.last_ts,
            "counter_max": self.counter_max,
            "readings": self.readings,
            "periods": [[ts, v] for ts, v in self.periods.items()],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MeterState:
        """Inverse of `to_dict`."""
        return cls(
            energy_type=data["energy_type"],
            last_ts=data["last_ts"],
            counter_max=data["counter_max"],
            readings=[tuple(r) for r in data["readings"]],
            periods={int(ts): v for ts, v in data["periods"]},
        )


@dataclass(slots=True)
class Columns:
    """One batch of readings as columns (the Arrow batch's, or one JSON reading's).

    Times are ms since the epoch (UTC) or None when missing.
    """

    meter_id: Sequence[Any]
    energy_type: Sequence[Any]
    kind: Sequence[Any]
    value: Sequence[Any]
    unit: Sequence[Any]
    ts: Sequence[Any]
    quality: Sequence[Any]
    seq: Sequence[Any]
    counter_max: Sequence[Any]
    period_start: Sequence[Any]

    def __len__(self) -> int:
        return len(self.meter_id)

    def slice(self, start: int, end: int) -> Columns:
        """Rows `start` to `end` (exclusive), as new columns."""
        return Columns(*(getattr(self, name)[start:end] for name in _COLUMNS))


_COLUMNS = tuple(Columns.__dataclass_fields__)


@dataclass(slots=True)
class NormaliseResult:
    """What one batch produced: intervals (with takebacks), rejects, duplicates."""

    intervals: list[Interval] = field(default_factory=list)
    rejected: list[tuple[int, ContractError]] = field(default_factory=list)  # (row, error)
    duplicates: dict[str, int] = field(default_factory=dict)  # per energy type
    used: int = 0  # readings that went into intervals (or wait as a meter's first)
    latest: int = -(2**62)  # the latest last_ts of the meters this batch moved on


def pair_consumption(
    previous: float, current: float, counter_max: float | None
) -> tuple[float, str]:
    """Consumption between consecutive cumulative readings, and the event: "", rollover, reset."""
    if current >= previous:
        return current - previous, ""
    if counter_max is not None:
        return counter_max - previous + current, "rollover"
    return current, "reset"


_CONVERSIONS: dict[tuple[str, str], float] = {}


def _conversion(energy_type: str, unit: str) -> float:
    key = (energy_type, unit)
    factor = _CONVERSIONS.get(key)
    if factor is None:
        factor = conversion_factor(energy_type, unit)  # raises unknown_unit / _energy_type
        _CONVERSIONS[key] = factor
    return factor


_KINDS = frozenset((_CUMULATIVE, _INTERVAL))
_QUALITIES = frozenset((_GOOD, _UNCERTAIN, _BAD))


def _check(cols: Columns, i: int) -> float:
    """Validate row i beyond what the agent decoded; return its conversion factor."""
    meter_id = cols.meter_id[i]
    if meter_id is None or meter_id == "":
        raise ContractError(ReasonCode.MISSING_FIELD, "meter_id is required", "meter_id")
    energy_type = cols.energy_type[i]
    if energy_type is None:
        raise ContractError(ReasonCode.MISSING_FIELD, "energy_type is required", "energy_type")
    unit = cols.unit[i]
    if unit is None:
        raise ContractError(ReasonCode.MISSING_FIELD, "unit is required", "unit")
    factor = _conversion(energy_type, unit)
    value = cols.value[i]
    if value is None:
        raise ContractError(ReasonCode.MISSING_FIELD, "value is required", "value")
    if not math.isfinite(value):
        raise ContractError(ReasonCode.NOT_FINITE, f"{value!r} is not finite", "value")
    if value < 0:
        raise ContractError(ReasonCode.NEGATIVE_VALUE, f"value {value} < 0", "value")
    if cols.ts[i] is None:
        raise ContractError(ReasonCode.MISSING_FIELD, "ts is required", "ts")
    kind = cols.kind[i]
    if kind not in _KINDS:
        raise ContractError(ReasonCode.BAD_ENUM, f"kind {kind!r} is not one of {_KINDS}", "kind")
    if cols.quality[i] not in _QUALITIES:
        raise ContractError(ReasonCode.BAD_ENUM, f"quality {cols.quality[i]!r}", "quality")
    counter_max = cols.counter_max[i]
    if counter_max is not None and not 0 < counter_max < math.inf:
        raise ContractError(ReasonCode.OUT_OF_RANGE, "counter_max must be > 0", "counter_max")
    if kind == _INTERVAL:
        start = cols.period_start[i]
        if start is None:
            raise ContractError(
                ReasonCode.MISSING_FIELD, "an interval reading needs period_start", "period_start"
            )
        if start >= cols.ts[i]:
            raise ContractError(
                ReasonCode.BAD_TIME, "period_start is not before ts", "period_start"
            )
    return factor


def _between(
    meter_id: str, et: str, a: Sequence[Any], b: Sequence[Any], cmax: float | None, sign: int
) -> Interval:
    consumption, event = pair_consumption(a[1], b[1], cmax)
    return (meter_id, et, a[0], b[0], consumption, bool(a[3] or b[3]), event, (a[2], b[2]), sign)


def _ts_key(r: Sequence[Any]) -> int:
    return r[0]


def normalise(meters: dict[str, MeterState], cols: Columns, grace_ms: int) -> NormaliseResult:
    """Apply one batch of one account's readings to its meters' state, in batch order.

    Returns the intervals to account (sign −1 ones take back what a late reading split),
    the rejected rows with their reason, and the duplicates. `meters` is updated in place.
    """
    out = NormaliseResult()
    intervals = out.intervals
    add = intervals.append
    touched: set[str] = set()  # to prune after the batch (the in-order case prunes in line)
    used = 0
    latest = out.latest
    seqs = cols.seq
    conversions = _CONVERSIONS
    kinds = _KINDS
    qualities = _QUALITIES
    rows = zip(
        cols.meter_id, cols.energy_type, cols.kind, cols.value, cols.unit, cols.ts,
        cols.quality, cols.counter_max, strict=True,
    )  # fmt: skip
    for i, (meter_id, et, kind, value, unit, ts, quality, cmax) in enumerate(rows):
        factor = conversions.get((et, unit))
        # the fast check of the common case; anything unusual takes the full check
        if (
            factor is None
            or value is None
            or ts is None
            or not meter_id
            or not 0.0 <= value < math.inf
            or kind not in kinds
            or quality not in qualities
            or (cmax is not None and not 0.0 < cmax < math.inf)
            or kind == _INTERVAL
        ):
            try:
                factor = _check(cols, i)
            except ContractError as exc:
                out.rejected.append((i, exc))
                continue
        if quality == _BAD:
            out.rejected.append(
                (i, ContractError(ReasonCode.BAD_QUALITY, "quality is bad", "quality"))
            )
            continue
        value *= factor
        uncertain = quality == _UNCERTAIN
        state = meters.get(meter_id)
        if state is None:
            state = meters[meter_id] = MeterState(energy_type=et)
        if cmax is not None:
            state.counter_max = cmax * factor
        if kind == _INTERVAL:
            touched.add(meter_id)
            known = state.periods.get(ts)
            if known is not None:
                if _duplicate(out, et, known, value, i):
                    continue
            elif ts < state.last_ts - grace_ms:
                out.rejected.append((i, _too_late(ts, state.last_ts)))
                continue
            else:
                state.periods[ts] = value
                intervals.append(
                    (meter_id, et, cols.period_start[i], ts, value, uncertain, "",
                     (cols.seq[i],), 1)
                )  # fmt: skip
            if ts > state.last_ts:
                state.last_ts = ts
                if ts > latest:
                    latest = ts
            used += 1
            continue
        readings = state.readings
        new = (ts, value, seqs[i], uncertain)
        if ts > state.last_ts or not readings:
            # the common case, the meter's newest reading: `_between` and `_prune` inlined
            if readings:
                prev = readings[-1]
                start = prev[0]
                if start < ts:
                    before = prev[1]
                    if value >= before:
                        consumption, event = value - before, ""
                    else:
                        consumption, event = pair_consumption(before, value, state.counter_max)
                    add((meter_id, et, start, ts, consumption, bool(prev[3] or uncertain),
                         event, (prev[2], new[2]), 1))  # fmt: skip
            readings.append(new)
            if ts > state.last_ts:
                state.last_ts = ts
                if ts > latest:
                    latest = ts
            horizon = state.last_ts - grace_ms
            if len(readings) > 1 and readings[1][0] <= horizon:
                if len(readings) > 2 and readings[2][0] > horizon:  # one fell out: the usual
                    del readings[0]
                else:
                    del readings[: bisect_left(readings, horizon + 1, key=_ts_key) - 1]
            if state.periods:
                touched.add(meter_id)
            used += 1
            continue
        touched.add(meter_id)
        at = bisect_left(readings, ts, key=_ts_key)
        if at < len(readings) and readings[at][0] == ts:
            _duplicate(out, et, readings[at][1], value, i)
            continue
        if ts < state.last_ts - grace_ms:
            out.rejected.append((i, _too_late(ts, state.last_ts)))
            continue
        cmax_m = state.counter_max
        after = readings[at] if at < len(readings) else None
        before = readings[at - 1] if at > 0 else None
        if before is not None and after is not None:
            intervals.append(_between(meter_id, et, before, after, cmax_m, -1))
        if before is not None:
            intervals.append(_between(meter_id, et, before, new, cmax_m, 1))
        if after is not None:
            intervals.append(_between(meter_id, et, new, after, cmax_m, 1))
        readings.insert(at, new)
        used += 1
    for meter_id in touched:
        _prune(meters[meter_id], grace_ms)
    out.used = used
    out.latest = latest
    return out


def _duplicate(out: NormaliseResult, et: str, known: float, value: float, row: int) -> bool:
    if known == value:
        out.duplicates[et] = out.duplicates.get(et, 0) + 1
    else:
        out.rejected.append(
            (
                row,
                ContractError(
                    ReasonCode.CONFLICTING_DUPLICATE,
                    f"a reading at the same ts has value {known}, this one {value}",
                    "value",
                ),
            )
        )
    return True


def _too_late(ts: int, last_ts: int) -> ContractError:
    hours = (last_ts - ts) / 3_600_000
    return ContractError(
        ReasonCode.TOO_LATE, f"{hours:.2f} h older than the meter's latest reading", "ts"
    )


def _prune(state: MeterState, grace_ms: int) -> None:
    """Keep readings within grace of the latest, plus the one just before (the anchor)."""
    horizon = state.last_ts - grace_ms
    readings = state.readings
    if len(readings) > 1 and readings[1][0] <= horizon:
        at = bisect_left(readings, horizon + 1, key=_ts_key)  # first ts > horizon
        del readings[: at - 1]
    if state.periods:
        old = [ts for ts in state.periods if ts < horizon]
        for ts in old:
            del state.periods[ts]


def _ms(dt: Any) -> int | None:
    return None if dt is None else int(dt.timestamp() * 1000)


def columns_from_readings(readings: Sequence[Any]) -> Columns:
    """Columns of decoded `schemas.contracts.Reading` records (the JSON path, replay)."""
    return Columns(
        meter_id=[r.meter_id for r in readings],
        energy_type=[r.energy_type for r in readings],
        kind=[r.kind for r in readings],
        value=[r.value for r in readings],
        unit=[r.unit for r in readings],
        ts=[_ms(r.ts) for r in readings],
        quality=[r.quality for r in readings],
        seq=[r.seq for r in readings],
        counter_max=[r.counter_max for r in readings],
        period_start=[_ms(r.period_start) for r in readings],
    )


def columns_from_arrow(batch: Any) -> Columns:
    """Columns of an Arrow record batch (or table) of readings (the reading contract's schema).

    Times become int64 ms; everything else is checked row by row in `normalise`.
    Raises KeyError for a missing column (the caller rejects the whole message).
    """
    names = batch.schema.names

    n = batch.num_rows

    def col(name: str) -> list[Any]:
        if name not in names:
            raise KeyError(name)
        column = batch.column(name)
        if column.null_count == n:
            return [None] * n  # counter_max, period_start, seq of most batches: cheaper
        return column.to_pylist()

    def times(name: str) -> list[Any]:
        column = batch.column(names.index(name))
        if column.null_count == n:
            return [None] * n
        if column.type != _TS_MS:
            column = column.cast(_TS_MS)
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        return column.view(pa.int64()).to_pylist()  # zero-copy: the ms as integers

    empty = [None] * n
    return Columns(
        meter_id=col("meter_id"),
        energy_type=col("energy_type"),
        kind=col("kind"),
        value=col("value"),
        unit=col("unit"),
        ts=times("ts") if "ts" in names else list(empty),
        quality=col("quality"),
        seq=col("seq") if "seq" in names else list(empty),
        counter_max=col("counter_max") if "counter_max" in names else list(empty),
        period_start=times("period_start") if "period_start" in names else list(empty),
    )
