"""The in-order case of normalise + account, over many accounts' batches at once (pure).

What the live agent sees almost always: each message holds one poll cycle of one
account's cumulative meters, every reading newer than its meter's last, no reset, no
rollover, each interval inside one or two 15-minute windows. For such batches the
arithmetic of `streams.rules.normalise.normalise` and `streams.rules.accounting.process`
(intervals, their shares of the windows) is done with numpy over all the batches of an
agent's inbox together, and only the state updates stay per reading in Python.

The results are the same as `process` would give, float for float: the same
operations in the same order (the window sums are added reading by reading, as
`apply_intervals` does). A batch that is anything else (a late, duplicate or rejected
reading, a reset, a new meter, an interval reading, a counter_max, an interval over
more than two windows) is not taken: the caller runs `process` on it, which also drops
the account's lane (the cached view below), since it may change the meters.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np

from schemas.contracts import Kind, Quality
from schemas.errors import ContractError
from schemas.factors import FactorBook
from streams.rules.accounting import WINDOW_MS, AccountState, Outcome, finish
from streams.rules.normalise import _CONVERSIONS, Columns, MeterState, NormaliseResult, _conversion

__all__ = ["IntervalColumns", "Lane", "process_spans"]

_CUMULATIVE = Kind.CUMULATIVE.value
_GOOD = Quality.GOOD.value
_UNCERTAIN = Quality.UNCERTAIN.value


@dataclass(slots=True)
class Lane:
    """An account's meters in the order its batches list them, with their last readings
    as arrays: a cache derived from its `MeterState`s (never stored, rebuilt at will)."""

    meter_ids: list[str]
    meters: list[MeterState]
    energy_types: list[str]
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


def _lane(state: AccountState, cols: Columns, a: int, b: int) -> Lane | None:
    """The account's lane for rows a..b, if their meters fit one (else None)."""
    ids = cols.meter_id[a:b]
    lane = state.lane
    if lane is None or lane.meter_ids != ids:
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
        last = [m.readings[-1] for m in meters]  # type: ignore[union-attr]
        lane = Lane(
            meter_ids=ids,
            meters=meters,  # type: ignore[arg-type]
            energy_types=[m.energy_type for m in meters],  # type: ignore[union-attr]
            units=[],
            factors=np.empty(0),
            last_ts=np.array([r[0] for r in last], np.int64),
            last_value=np.array([r[1] for r in last], np.float64),
            last_seq=[r[2] for r in last],
            last_uncertain=np.array([bool(r[3]) for r in last], np.bool_),
        )
        state.lane = lane
    if cols.energy_type[a:b] != lane.energy_types:
        return None
    units = cols.unit[a:b]
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
    n = b - a
    if (
        cols.kind[a:b].count(_CUMULATIVE) != n
        or cols.counter_max[a:b].count(None) != n
        or cols.ts[a:b].count(None)
        or cols.value[a:b].count(None)
    ):
        return None
    quality = cols.quality[a:b]
    if quality.count(_GOOD) + quality.count(_UNCERTAIN) != n:
        return None
    return lane


def process_spans(
    spans: Sequence[tuple[AccountState, int, int, str]],
    cols: Columns,
    *,
    factors: FactorBook,
    grace_ms: int,
    retention_ms: int,
) -> tuple[list[Outcome | None], IntervalColumns | None]:
    """Normalise and account many accounts' in-order batches at once.

    `spans`: (state, first row, end row, factor region) per batch, rows of `cols`;
    each account at most once. Returns per span its `Outcome` (its `normalised`
    holds no interval tuples: the intervals of all taken spans are the
    `IntervalColumns`) or None when the span is not the in-order case: nothing of it
    was applied, and the caller runs `process` on it.
    """
    outcomes: list[Outcome | None] = [None] * len(spans)
    taken: list[tuple[int, Lane]] = []
    for i, (state, a, b, _region) in enumerate(spans):
        if b > a:
            lane = _lane(state, cols, a, b)
            if lane is not None:
                taken.append((i, lane))
    if not taken:
        return outcomes, None
    rows = [(spans[i][1], spans[i][2]) for i, _ in taken]
    raw = np.array(list(chain.from_iterable(cols.value[a:b] for a, b in rows)), np.float64)
    ts = np.array(list(chain.from_iterable(cols.ts[a:b] for a, b in rows)), np.int64)
    value = raw * np.concatenate([lane.factors for _, lane in taken])
    prev_ts = np.concatenate([lane.last_ts for _, lane in taken])
    prev_value = np.concatenate([lane.last_value for _, lane in taken])
    ws = prev_ts - prev_ts % WINDOW_MS
    we = ws + WINDOW_MS
    # what `normalise` takes its fast branch for, and an interval over one or two windows
    ok = (raw >= 0.0) & (raw < np.inf) & (ts > prev_ts) & (value >= prev_value)
    ok &= ts <= we + WINDOW_MS
    lengths = np.array([b - a for a, b in rows], np.int64)
    offsets = np.zeros(len(rows) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    bad = np.logical_or.reduceat(~ok, offsets[:-1])
    if bad.any():  # rare: keep the spans that fit, and their rows
        keep = ~bad
        taken = [t for t, k in zip(taken, keep.tolist(), strict=True) if k]
        rows = [r for r, k in zip(rows, keep.tolist(), strict=True) if k]
        if not taken:
            return outcomes, None
        mask = np.repeat(keep, lengths)
        raw, ts, value, prev_ts, prev_value, ws, we = (
            x[mask] for x in (raw, ts, value, prev_ts, prev_value, ws, we)
        )
        lengths = lengths[keep]
        offsets = np.zeros(len(rows) + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
    consumption = value - prev_value
    one = ts <= we
    # `split_interval`'s arithmetic: the first share in proportion to time, the last
    # takes the rest
    first = np.where(one, consumption, consumption * (we - prev_ts) / (ts - prev_ts))
    second = consumption - first
    quality = list(chain.from_iterable(cols.quality[a:b] for a, b in rows))
    if _UNCERTAIN in quality:
        new_uncertain = np.array([q == _UNCERTAIN for q in quality], np.bool_)
    else:
        new_uncertain = np.zeros(len(quality), np.bool_)
    uncertain = np.concatenate([lane.last_uncertain for _, lane in taken]) | new_uncertain
    seq = list(chain.from_iterable(cols.seq[a:b] for a, b in rows))
    prev_seq = list(chain.from_iterable(lane.last_seq for _, lane in taken))

    ts_l, value_l, ws_l = ts.tolist(), value.tolist(), ws.tolist()
    one_l, first_l, second_l = one.tolist(), first.tolist(), second.tolist()
    unc_new_l, unc_l = new_uncertain.tolist(), uncertain.tolist()
    for (i, lane), lo, hi in zip(taken, offsets[:-1].tolist(), offsets[1:].tolist(), strict=True):
        state, _a, _b, region = spans[i]
        # the meters' readings, as `normalise`'s in-order branch keeps them
        for m, t, v, s, u in zip(
            lane.meters, ts_l[lo:hi], value_l[lo:hi], seq[lo:hi], unc_new_l[lo:hi], strict=True
        ):
            readings = m.readings
            readings.append((t, v, s, u))
            m.last_ts = t
            horizon = t - grace_ms
            if readings[1][0] <= horizon:
                if len(readings) > 2 and readings[2][0] > horizon:
                    del readings[0]
                else:
                    del readings[: bisect_left(readings, horizon + 1, key=_ts_key) - 1]
        # their shares of the windows, added one by one as `apply_intervals` does
        windows = state.windows
        touched: set[tuple[str, int]] = set()
        for et, w0, single, s1, s2, u in zip(
            lane.energy_types, ws_l[lo:hi], one_l[lo:hi], first_l[lo:hi], second_l[lo:hi],
            unc_l[lo:hi], strict=True,
        ):  # fmt: skip
            key = (et, w0)
            w = windows.get(key)
            if w is None:
                w = windows[key] = [0.0, 0, 0, None]
            w[0] += s1
            if u:
                w[1] += 1
            touched.add(key)
            if not single:
                key = (et, w0 + WINDOW_MS)
                w = windows.get(key)
                if w is None:
                    w = windows[key] = [0.0, 0, 0, None]
                w[0] += s2
                if u:
                    w[1] += 1
                touched.add(key)
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


def _ts_key(r: Sequence[Any]) -> int:
    return r[0]
