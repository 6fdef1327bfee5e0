"""The in-order case of normalise + account, over many accounts' batches at once (pure).

What the live agent sees almost always: each message holds one poll cycle of one
account's cumulative meters, every reading newer than its meter's last, no reset, no
rollover, each interval over at most eight 15-minute windows. For such batches the
arithmetic of `streams.rules.normalise.normalise` and `streams.rules.accounting.process`
(intervals, their shares of the windows) is done with numpy over all the batches of an
agent's inbox together, and only the state updates stay per reading in Python.

The results are the same as `process` would give, float for float: the same
operations in the same order (the window sums are added reading by reading, as
`apply_intervals` does). A batch that is anything else (a late, duplicate or rejected
reading, a reset, a new meter, an interval reading, a counter_max, an interval over
more than eight windows) is not taken: the caller runs `process` on it, which also drops
the account's lane (the cached view below), since it may change the meters.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.contracts import Kind, Quality
from schemas.errors import ContractError
from schemas.factors import FactorBook
from streams.rules.accounting import WINDOW_MS, AccountState, Outcome, finish
from streams.rules.normalise import (
    _CONVERSIONS,
    Columns,
    MeterState,
    NormaliseResult,
    _conversion,
    _ts_key,
)

__all__ = ["IntervalColumns", "Lane", "Rows", "process_spans"]

_CUMULATIVE = Kind.CUMULATIVE.value
_GOOD = Quality.GOOD.value
_UNCERTAIN = Quality.UNCERTAIN.value
_TS_MS = pa.timestamp("ms", tz="UTC")
_MAX_WINDOWS = 8  # an interval over more windows (2 h) takes `process`
# `sum` of floats adds one by one up to Python 3.11 (3.12 compensates): where it does,
# it is `apply_intervals`' arithmetic at C speed
_SUM_IS_SEQUENTIAL = sum([1e16, 1.0, -1e16], 0.0) == 0.0


def _add_all(start: float, values: Sequence[float]) -> float:
    if _SUM_IS_SEQUENTIAL:
        return sum(values, start)
    for v in values:
        start += v
    return start


@dataclass(slots=True)
class Rows:
    """Readings as the lane reads them: the strings it compares as lists, the numbers as
    arrays, and `plain`: the row passes `normalise`'s checks for the in-order case
    (cumulative, good or uncertain, no counter_max, ts and value present)."""

    meter_id: list[Any]
    energy_type: list[Any]
    unit: list[Any]
    seq: list[Any]
    ts: np.ndarray  # int64 ms (anything where not plain)
    value: np.ndarray  # float64, as sent (anything where not plain)
    uncertain: np.ndarray  # bool
    plain: np.ndarray  # bool

    def __len__(self) -> int:
        return len(self.meter_id)

    @classmethod
    def from_columns(cls, cols: Columns) -> Rows:
        """From `Columns` (lists; replay's and the tests' form)."""
        ts = cols.ts
        value = cols.value
        plain = [
            k == _CUMULATIVE and q in (_GOOD, _UNCERTAIN) and c is None and t is not None
            and isinstance(v, float | int)
            for k, q, c, t, v in zip(cols.kind, cols.quality, cols.counter_max, ts, value,
                                     strict=True)
        ]  # fmt: skip
        return cls(
            meter_id=list(cols.meter_id),
            energy_type=list(cols.energy_type),
            unit=list(cols.unit),
            seq=list(cols.seq),
            ts=np.array([t if p else 0 for t, p in zip(ts, plain, strict=True)], np.int64),
            value=np.array([v if p else 0.0 for v, p in zip(value, plain, strict=True)]),
            uncertain=np.array([q == _UNCERTAIN for q in cols.quality], np.bool_),
            plain=np.array(plain, np.bool_),
        )

    @classmethod
    def from_arrow(cls, table: pa.Table) -> Rows:
        """From a table of readings (the reading contract's Arrow schema): the checks in
        Arrow, the numbers without a Python object each. Raises KeyError for a missing
        column."""
        for name in ("kind", "quality", "counter_max", "ts", "value", "meter_id"):
            if name not in table.schema.names:
                raise KeyError(name)
        quality = table.column("quality")
        ts = table.column("ts")
        if ts.type != _TS_MS:
            ts = ts.cast(_TS_MS)
        value = table.column("value")
        plain = pc.and_(
            pc.and_(
                pc.equal(table.column("kind"), _CUMULATIVE),
                pc.is_in(quality, pa.array([_GOOD, _UNCERTAIN])),
            ),
            pc.and_(
                pc.and_(pc.is_null(table.column("counter_max")), pc.is_valid(ts)),
                pc.is_valid(value),
            ),
        ).fill_null(False)
        seq = table.column("seq").to_pylist() if "seq" in table.schema.names else None
        return cls(
            meter_id=table.column("meter_id").to_pylist(),
            energy_type=table.column("energy_type").to_pylist(),
            unit=table.column("unit").to_pylist(),
            seq=seq if seq is not None else [None] * table.num_rows,
            ts=_numbers(ts.cast(pa.int64()), 0),
            value=_numbers(value, 0.0),
            uncertain=_numbers(pc.equal(quality, _UNCERTAIN), False),
            plain=_numbers(plain, False),
        )


def _numbers(column: Any, fill: Any) -> np.ndarray:
    if column.null_count:
        column = column.fill_null(fill)
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return column.to_numpy(zero_copy_only=False)


@dataclass(slots=True)
class Lane:
    """An account's meters in the order its batches list them, with their last readings
    as arrays: a cache derived from its `MeterState`s (never stored, rebuilt at will).
    `order` lists the positions by energy type (stable): `groups` of (energy type, size)."""

    meter_ids: list[str]
    meters: list[MeterState]
    energy_types: list[str]
    order: np.ndarray
    groups: list[tuple[str, int]]
    group_sizes: np.ndarray
    units: list[str]
    factors: np.ndarray  # the units' conversion factors to canonical
    last_ts: np.ndarray  # int64 ms
    last_value: np.ndarray  # float64, canonical
    last_seq: list[Any]
    last_uncertain: np.ndarray  # bool


@dataclass(slots=True)
class IntervalColumns:
    """The +1 intervals of the batches taken, as columns, in batch order; `span` is the
    index (in the `spans` given) of the batch each row came from."""

    span: np.ndarray
    meter_id: list[str]
    energy_type: list[str]
    start: np.ndarray
    end: np.ndarray
    consumption: np.ndarray
    uncertain: np.ndarray
    seq_start: list[Any]
    seq_end: list[Any]


def _new_lane(state: AccountState, ids: list[str]) -> Lane | None:
    meters = [state.meters.get(m) for m in ids]
    if len(set(ids)) != len(ids):
        return None
    for m in meters:
        if (
            m is None
            or not m.readings
            or m.periods
            or m.counter_max is not None
            or m.last_ts != m.readings[-1][0]
        ):
            return None
    ms: list[MeterState] = meters  # type: ignore[assignment]
    last = [m.readings[-1] for m in ms]
    ets = [m.energy_type for m in ms]
    by_type: dict[str, list[int]] = {}
    for i, et in enumerate(ets):
        by_type.setdefault(et, []).append(i)
    return Lane(
        meter_ids=ids,
        meters=ms,
        energy_types=ets,
        order=np.array([i for positions in by_type.values() for i in positions], np.int64),
        groups=[(et, len(positions)) for et, positions in by_type.items()],
        group_sizes=np.array([len(positions) for positions in by_type.values()], np.int64),
        units=[],
        factors=np.empty(0),
        last_ts=np.array([r[0] for r in last], np.int64),
        last_value=np.array([r[1] for r in last], np.float64),
        last_seq=[r[2] for r in last],
        last_uncertain=np.array([bool(r[3]) for r in last], np.bool_),
    )


def _lane(state: AccountState, rows: Rows, a: int, b: int) -> Lane | None:
    """The account's lane for rows a..b, if their meters and units fit one (else None)."""
    ids = rows.meter_id[a:b]
    lane = state.lane
    if lane is None or lane.meter_ids != ids:
        lane = state.lane = _new_lane(state, ids)
        if lane is None:
            return None
    if rows.energy_type[a:b] != lane.energy_types:
        return None
    units = rows.unit[a:b]
    if units != lane.units:
        factors = []
        for et, unit in zip(lane.energy_types, units, strict=True):
            factor = _CONVERSIONS.get((et, unit))
            if factor is None:
                try:
                    factor = _conversion(et, unit)
                except ContractError:
                    return None
            factors.append(factor)
        lane.units = units
        lane.factors = np.array(factors, np.float64)
    return lane


def _shares(
    start: np.ndarray, end: np.ndarray, ws: np.ndarray, consumption: np.ndarray, n: int
) -> list[np.ndarray]:
    """Per window k of each interval (from its first window `ws`), its share, with
    `split_interval`'s arithmetic: each share in proportion to time, the last one the
    rest of the consumption (so the shares add up exactly); 0 past an interval's end."""
    duration = end - start
    done = np.zeros(len(start))
    out = []
    for k in range(n):
        window_start = ws + k * WINDOW_MS
        window_end = window_start + WINDOW_MS
        inside = window_start < end
        last = inside & (window_end >= end)
        share = consumption * (window_end - np.maximum(window_start, start)) / duration
        share = np.where(last, consumption - done, np.where(inside, share, 0.0))
        done = np.where(inside & ~last, done + share, done)
        out.append(share)
    return out


def _offsets(lengths: np.ndarray) -> np.ndarray:
    """Where each of consecutive runs of `lengths` starts, and the end: [0, l0, l0+l1, ...]."""
    out = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=out[1:])
    return out


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The row numbers of consecutive ranges [start, start + length), concatenated."""
    total = int(lengths.sum())
    shift = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return np.arange(total, dtype=np.int64) + shift


def process_spans(
    spans: Sequence[tuple[AccountState, int, int, str]],
    rows: Rows,
    *,
    factors: FactorBook,
    grace_ms: int,
    retention_ms: int,
) -> tuple[list[Outcome | None], IntervalColumns | None]:
    """Normalise and account many accounts' in-order batches at once.

    `spans`: (state, first row, end row, factor region) per batch, rows of `rows`;
    each account at most once. Returns per span its `Outcome` (its `normalised`
    holds no interval tuples: the intervals of all taken spans are the
    `IntervalColumns`) or None when the span is not the in-order case: nothing of it
    was applied, and the caller runs `process` on it.
    """
    outcomes: list[Outcome | None] = [None] * len(spans)
    taken: list[tuple[int, Lane]] = []
    for i, (state, a, b, _region) in enumerate(spans):
        if b > a:
            lane = _lane(state, rows, a, b)
            if lane is not None:
                taken.append((i, lane))
    if not taken:
        return outcomes, None
    starts = np.array([spans[i][1] for i, _ in taken], np.int64)
    lengths = np.array([spans[i][2] - spans[i][1] for i, _ in taken], np.int64)
    at = _ranges(starts, lengths)
    raw = rows.value[at]
    ts = rows.ts[at]
    value = raw * np.concatenate([lane.factors for _, lane in taken])
    prev_ts = np.concatenate([lane.last_ts for _, lane in taken])
    prev_value = np.concatenate([lane.last_value for _, lane in taken])
    # what `normalise` takes its fast branch for, and an interval over at most 8 windows
    ok = rows.plain[at] & (raw >= 0.0) & (raw < np.inf) & (ts > prev_ts) & (value >= prev_value)
    ws = prev_ts - prev_ts % WINDOW_MS
    ok &= ts <= ws + _MAX_WINDOWS * WINDOW_MS
    offsets = _offsets(lengths)
    bad = np.logical_or.reduceat(~ok, offsets[:-1])
    if bad.any():  # rare: keep the spans that fit, and their rows
        keep = ~bad
        taken = [t for t, k in zip(taken, keep.tolist(), strict=True) if k]
        if not taken:
            return outcomes, None
        mask = np.repeat(keep, lengths)
        at, raw, ts, value, prev_ts, prev_value, ws = (
            x[mask] for x in (at, raw, ts, value, prev_ts, prev_value, ws)
        )
        lengths = lengths[keep]
        offsets = _offsets(lengths)
    consumption = value - prev_value
    windows_of = (ts - ws + WINDOW_MS - 1) // WINDOW_MS  # windows each interval touches
    shares = _shares(prev_ts, ts, ws, consumption, int(windows_of.max()))
    new_uncertain = rows.uncertain[at]
    uncertain = np.concatenate([lane.last_uncertain for _, lane in taken]) | new_uncertain
    seq = list(chain.from_iterable(rows.seq[spans[i][1] : spans[i][2]] for i, _ in taken))
    prev_seq = list(chain.from_iterable(lane.last_seq for _, lane in taken))

    # by energy type within each batch: a group's intervals cover the same windows, mostly
    perm = np.concatenate([lane.order for _, lane in taken]) + np.repeat(offsets[:-1], lengths)
    sizes = np.concatenate([lane.group_sizes for _, lane in taken])
    bounds = _offsets(sizes)
    g_ws = ws[perm]
    g_n = windows_of[perm]
    g_unc = uncertain[perm].astype(np.int64)
    heads = bounds[:-1]
    uniform = (np.minimum.reduceat(g_ws, heads) == np.maximum.reduceat(g_ws, heads)) & (
        np.minimum.reduceat(g_n, heads) == np.maximum.reduceat(g_n, heads)
    )
    unc_counts = np.add.reduceat(g_unc, heads).tolist()
    uniform_l, bounds_l = uniform.tolist(), bounds.tolist()
    g_ws_l, g_n_l = g_ws.tolist(), g_n.tolist()
    g_shares_l = [share[perm].tolist() for share in shares]  # per window of an interval
    g_unc_l = g_unc.tolist()

    ts_l, value_l = ts.tolist(), value.tolist()
    unc_new_l = new_uncertain.tolist()
    group = 0
    for (i, lane), lo, hi in zip(taken, offsets[:-1].tolist(), offsets[1:].tolist(), strict=True):
        state, _a, _b, region = spans[i]
        # the meters' readings, as `normalise`'s in-order branch keeps them
        news = zip(ts_l[lo:hi], value_l[lo:hi], seq[lo:hi], unc_new_l[lo:hi], strict=True)
        for m, new in zip(lane.meters, news, strict=True):
            readings = m.readings
            readings.append(new)
            t = m.last_ts = new[0]
            horizon = t - grace_ms
            if readings[1][0] <= horizon:
                if len(readings) > 2 and readings[2][0] > horizon:
                    del readings[0]
                else:
                    del readings[: bisect_left(readings, horizon + 1, key=_ts_key) - 1]
        # their shares of the windows, added in reading order as `apply_intervals` does
        windows = state.windows
        touched: set[tuple[str, int]] = set()
        for et, _size in lane.groups:
            g0, g1 = bounds_l[group], bounds_l[group + 1]
            if uniform_l[group]:  # the usual: one run of windows for the whole group
                w0 = g_ws_l[g0]
                for k in range(g_n_l[g0]):
                    key = (et, w0 + k * WINDOW_MS)
                    w = windows.get(key)
                    if w is None:
                        w = windows[key] = [0.0, 0, 0, None]
                    w[0] = _add_all(w[0], g_shares_l[k][g0:g1])
                    w[1] += unc_counts[group]
                    touched.add(key)
            else:
                for j in range(g0, g1):
                    for k in range(g_n_l[j]):
                        key = (et, g_ws_l[j] + k * WINDOW_MS)
                        w = windows.get(key)
                        if w is None:
                            w = windows[key] = [0.0, 0, 0, None]
                        w[0] += g_shares_l[k][j]
                        w[1] += g_unc_l[j]
                        touched.add(key)
            group += 1
        lane.last_ts = ts[lo:hi].copy()
        lane.last_value = value[lo:hi].copy()
        lane.last_seq = seq[lo:hi]
        lane.last_uncertain = new_uncertain[lo:hi].copy()
        result = NormaliseResult(used=hi - lo, latest=max(ts_l[lo:hi]))
        outcomes[i] = finish(
            state, result, touched, factors=factors, region=region,
            grace_ms=grace_ms, retention_ms=retention_ms,
        )  # fmt: skip
    span = np.repeat(np.array([i for i, _ in taken], np.int64), lengths)
    intervals = IntervalColumns(
        span=span,
        meter_id=list(chain.from_iterable(lane.meter_ids for _, lane in taken)),
        energy_type=list(chain.from_iterable(lane.energy_types for _, lane in taken)),
        start=prev_ts,
        end=ts,
        consumption=consumption,
        uncertain=uncertain,
        seq_start=prev_seq,
        seq_end=seq,
    )
    return outcomes, intervals
