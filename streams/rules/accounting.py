"""Account: energy intervals → 15-minute emission windows per account × energy type (pure).

Windows are tumbling, in UTC, on event time: `[k·15 min, (k+1)·15 min)`. An interval
that spans window boundaries is split across the windows in proportion to time. A
window holds its consumption (canonical unit) and, when emitted, the factor it used
and `tco2e = consumption × factor value`. Each emission of a window carries a
`revision` one higher than the last (the first is 1), and a window is emitted again
only when what it says changes: late data (a takeback and its halves), a new factor
version, or the account's grid region. So a downstream upsert by
(account_id, energy_type, window_start) keeping the highest revision never double counts.

State (`AccountState`) is plain data: the account's meters (`MeterState`) and its
windows within `retention` of its latest event time. The live agent keeps it in a Faust
table keyed by account_id, `carbon-accounts replay` in a dict; both call `process`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from schemas.factors import FactorBook
from schemas.units import CANONICAL_UNIT
from streams.rules.normalise import Columns, Interval, MeterState, NormaliseResult, normalise

__all__ = [
    "WINDOW_MS",
    "AccountState",
    "Accountant",
    "Outcome",
    "apply_intervals",
    "emit_windows",
    "factor_region",
    "finish",
    "parse_region_map",
    "process",
    "recompute",
    "split_interval",
]

WINDOW_MS = 15 * 60 * 1000

# a window: [consumption, uncertain contributions, revision, emitted (cons, id, version, unc)]
_CONS, _UNC, _REV, _EMITTED = 0, 1, 2, 3

_UNITS = {str(k): v for k, v in CANONICAL_UNIT.items()}


@dataclass(slots=True)
class AccountState:
    """One account's normalising and accounting state (plain data, JSON-able via to_dict)."""

    account_id: str
    meters: dict[str, MeterState] = field(default_factory=dict)
    #: (energy_type, window_start_ms) → [consumption, uncertain count, revision, emitted]
    windows: dict[tuple[str, int], list[Any]] = field(default_factory=dict)
    watermark: int = -(2**62)  # latest event time seen (ms)
    factor_generation: int = -1  # FactorBook.generation the windows were last emitted with
    region: str = ""  # factor region the windows were last emitted with
    #: offset of the last `meter.readings` message applied, in the account's partition
    #: (-1: none): the live agent skips messages at or below it after a restart
    offset: int = -1
    #: a derived view of the meters for `streams.rules.inorder` (not stored)
    lane: Any = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the Faust changelog carries this)."""
        return {
            "account_id": self.account_id,
            "meters": {m: s.to_dict() for m, s in self.meters.items()},
            "windows": [[et, ws, *w] for (et, ws), w in self.windows.items()],
            "watermark": self.watermark,
            "factor_generation": self.factor_generation,
            "region": self.region,
            "offset": self.offset,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AccountState:
        """Inverse of `to_dict`."""
        windows: dict[tuple[str, int], list[Any]] = {}
        for et, ws, cons, unc, rev, emitted in data["windows"]:
            windows[(et, ws)] = [cons, unc, rev, tuple(emitted) if emitted else None]
        return cls(
            account_id=data["account_id"],
            meters={m: MeterState.from_dict(s) for m, s in data["meters"].items()},
            windows=windows,
            watermark=data["watermark"],
            factor_generation=data["factor_generation"],
            region=data.get("region", ""),
            offset=data.get("offset", -1),
        )


@dataclass(slots=True)
class Outcome:
    """What one batch of an account's readings produced."""

    normalised: NormaliseResult
    windows: list[dict[str, Any]]  # EmissionWindow records (JSON-ready), revised or new


def parse_region_map(text: str) -> dict[str, str]:
    """`"east_china=east_china,*=national"` → {account region: factor region}."""
    out: dict[str, str] = {}
    for part in text.split(","):
        if part.strip():
            account_region, _, factor_region = part.partition("=")
            out[account_region.strip()] = factor_region.strip()
    return out


def factor_region(region_map: Mapping[str, str], account_region: str | None) -> str:
    """The grid factor region of an account region (the map's `*` entry by default)."""
    if account_region and account_region in region_map:
        return region_map[account_region]
    return region_map.get("*", "national")


def split_interval(start: int, end: int, consumption: float) -> list[tuple[int, float]]:
    """`[(window_start, share)]` of an interval, shares in proportion to time (sum exact)."""
    ws = start - start % WINDOW_MS
    if end <= ws + WINDOW_MS:
        return [(ws, consumption)]
    duration = end - start
    out: list[tuple[int, float]] = []
    done = 0.0
    while ws < end:
        we = ws + WINDOW_MS
        if we >= end:
            out.append((ws, consumption - done))  # the last share takes the rounding
            break
        share = consumption * (we - max(ws, start)) / duration
        out.append((ws, share))
        done += share
        ws = we
    return out


def apply_intervals(
    windows: dict[tuple[str, int], list[Any]], intervals: Iterable[Interval]
) -> set[tuple[str, int]]:
    """Add (sign +1) or take back (−1) intervals' shares in the windows; returns those touched."""
    touched: set[tuple[str, int]] = set()
    for _meter, et, start, end, consumption, uncertain, _event, _seqs, sign in intervals:
        ws = start - start % WINDOW_MS
        if end <= ws + WINDOW_MS:  # the common case: inside one window
            key = (et, ws)
            w = windows.get(key)
            if w is None:
                w = windows[key] = [0.0, 0, 0, None]
            w[_CONS] += sign * consumption
            if uncertain:
                w[_UNC] += sign
            touched.add(key)
            continue
        for ws, share in split_interval(start, end, consumption):
            key = (et, ws)
            w = windows.get(key)
            if w is None:
                w = windows[key] = [0.0, 0, 0, None]
            w[_CONS] += sign * share
            if uncertain:
                w[_UNC] += sign
            touched.add(key)
    return touched


_ISO: dict[int, str] = {}


def _iso(ms: int) -> str:
    text = _ISO.get(ms)
    if text is None:
        if len(_ISO) > 200_000:
            _ISO.clear()
        text = _ISO[ms] = datetime.fromtimestamp(ms / 1000, UTC).isoformat()
    return text


def emit_windows(
    state: AccountState,
    keys: Iterable[tuple[str, int]],
    factors: FactorBook,
    region: str,
) -> list[dict[str, Any]]:
    """The EmissionWindow records of `keys` whose content changed, each with revision + 1."""
    out: list[dict[str, Any]] = []
    account_id = state.account_id
    for key in sorted(keys):
        w = state.windows.get(key)
        if w is None:
            continue
        et, ws = key
        consumption = w[_CONS]
        if -1e-9 < consumption < 1e-9:
            consumption = 0.0  # what a takeback leaves of rounding
        factor = factors.lookup(et, region, ws)
        if factor is None:
            fid, fver, fval, funit = "", "", 0.0, ""  # no factor known: tCO2e stays 0
        else:
            fid, fver, fval, funit = factor
        uncertain = w[_UNC] > 0
        emitted = (consumption, fid, fver, uncertain)
        if emitted == w[_EMITTED]:
            continue
        w[_REV] += 1
        w[_EMITTED] = emitted
        out.append(
            {
                "account_id": account_id,
                "energy_type": et,
                "window_start": _iso(ws),
                "window_end": _iso(ws + WINDOW_MS),
                "consumption": consumption,
                "unit": _UNITS.get(et, ""),
                "tco2e": consumption * fval,
                "factor_id": fid,
                "factor_version": fver,
                "factor_value": fval,
                "factor_unit": funit,
                "revision": w[_REV],
                "uncertain": uncertain,
            }
        )
    return out


def _prune(state: AccountState, retention_ms: int) -> None:
    floor = state.watermark - retention_ms - WINDOW_MS
    old = [key for key in state.windows if key[1] < floor]
    for key in old:
        del state.windows[key]


def process(
    state: AccountState,
    cols: Columns,
    *,
    factors: FactorBook,
    region: str,
    grace_ms: int,
    retention_ms: int,
) -> Outcome:
    """Normalise and account one batch of an account's readings; update `state` in place.

    `region` is the account's factor region. Windows go out when they change; when the
    factor book or region changed since the account's last batch, every kept window is
    re-examined (a factor revision re-emits those whose factor changed).
    """
    state.lane = None  # normalise may change the meters the lane was built from
    result = normalise(state.meters, cols, grace_ms)
    touched = apply_intervals(state.windows, result.intervals)
    return finish(
        state, result, touched, factors=factors, region=region,
        grace_ms=grace_ms, retention_ms=retention_ms,
    )  # fmt: skip


def finish(
    state: AccountState,
    result: NormaliseResult,
    touched: set[tuple[str, int]],
    *,
    factors: FactorBook,
    region: str,
    grace_ms: int,
    retention_ms: int,
) -> Outcome:
    """After a batch's intervals were applied (`touched`: the windows they changed):
    move the watermark, emit what changed, drop windows past retention."""
    if result.latest > state.watermark:
        state.watermark = result.latest
    if state.factor_generation != factors.generation or state.region != region:
        touched = set(state.windows)
        state.factor_generation = factors.generation
        state.region = region
    windows = emit_windows(state, touched, factors, region)
    _prune(state, max(retention_ms, grace_ms))
    return Outcome(result, windows)


def recompute(state: AccountState, factors: FactorBook, region: str) -> list[dict[str, Any]]:
    """Re-examine every kept window after a factor revision (or region change)."""
    state.factor_generation = factors.generation
    state.region = region
    return emit_windows(state, list(state.windows), factors, region)


class Accountant:
    """The accounting rules with their configuration: what the agent and replay both call."""

    def __init__(
        self,
        factors: FactorBook,
        *,
        grace_hours: float,
        retention_hours: float,
        grid_factor_regions: str = "*=national",
    ) -> None:
        self.factors = factors
        self.grace_ms = int(grace_hours * 3_600_000)
        self.retention_ms = max(int(retention_hours * 3_600_000), self.grace_ms)
        self.region_map = parse_region_map(grid_factor_regions)

    @classmethod
    def from_settings(cls, settings: Any, factors: FactorBook) -> Accountant:
        """From `schemas.settings.Settings` (its `streams` section)."""
        s = settings.streams
        return cls(
            factors,
            grace_hours=s.grace_hours,
            retention_hours=s.window_retention_hours,
            grid_factor_regions=s.grid_factor_regions,
        )

    def process(
        self, state: AccountState, cols: Columns, account_region: str | None = None
    ) -> Outcome:
        """Normalise and account one batch of one account's readings."""
        return process(
            state,
            cols,
            factors=self.factors,
            region=factor_region(self.region_map, account_region),
            grace_ms=self.grace_ms,
            retention_ms=self.retention_ms,
        )

    def process_spans(
        self, spans: Sequence[tuple[AccountState, int, int, str | None]], rows: Any
    ) -> tuple[list[Outcome | None], Any]:
        """`streams.rules.inorder.process_spans` over many accounts' batches (`rows`: an
        `inorder.Rows`; spans: state, first row, end row, account region; each once):
        per span its Outcome, or None where the caller must run `process`; and the
        taken spans' intervals as `IntervalColumns` (None when none was taken)."""
        from streams.rules.inorder import process_spans  # it builds on this module

        return process_spans(
            [(s, a, b, factor_region(self.region_map, r)) for s, a, b, r in spans],
            rows,
            factors=self.factors,
            grace_ms=self.grace_ms,
            retention_ms=self.retention_ms,
        )

    def recompute(
        self, state: AccountState, account_region: str | None = None
    ) -> list[dict[str, Any]]:
        """Windows of an account that a factor revision (or region change) changed."""
        return recompute(state, self.factors, factor_region(self.region_map, account_region))
