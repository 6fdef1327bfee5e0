"""The four-colour labelling rule, pure: intensity, K, bands, historical-decline lift, hysteresis.

The rule (shared/domain/README.md; the DB3308/T 095 thresholds are not public, so these
are our *defaults*, modelled on Huzhou's carbon-efficiency method, configurable per area
and industry in `streams/data/labelling.yaml`):

- evaluation period: the trailing `window_months` (12) **closed** local months before the
  month of the account's latest emission window (a month closes when a window of a later
  month arrives), so emissions and denominators cover the same whole months;
- intensity = emissions over the period ÷ the account's denominator over the period
  (denominator records are prorated by time overlap and must cover the whole period);
- K = intensity ÷ benchmark (the benchmark of the account's area, industry (longest GB/T
  4754 prefix) and region (exact, else `*`) that overlaps the period most);
- dark green K ≤ 0.8, light green ≤ 1.2, yellow ≤ 2.0, red above;
- historical decline: intensity down ≥ 5% on the same period a year earlier lifts the
  colour one step, never above dark green;
- hysteresis: once labelled, K must pass a band edge by more than `hysteresis` × the edge
  (default 2%) to change band, and the decline must pass the lift threshold by the same
  relative margin to switch the lift on or off; the first evaluation uses the exact edges;
- no denominator or no benchmark for the period, or a month of the period without any
  emission window (a new account, a gap in the feed): no colour, with the reason
  (no_denominator, no_benchmark, incomplete_period), never a guess. The lift likewise
  needs every month of the year-earlier period.

A batch of windows (one `emissions.windows` message) is taken per account in local-month
order (`batch_steps`): the account is evaluated once per month the batch closes, on every
row of the batch before that month, and once on all its late rows of closed months; never
on a period some of whose rows come later in the same batch (a label would flicker).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from schemas.contracts import Area, Colour

__all__ = [
    "COLOURS",
    "BandRule",
    "BenchmarkValue",
    "DenominatorValue",
    "Evaluation",
    "LabelReason",
    "LabelState",
    "RuleBook",
    "band_of",
    "batch_steps",
    "benchmark_for",
    "combine_triggers",
    "decide",
    "denominator_over",
    "evaluate",
    "evaluation_period",
    "is_labelled",
    "lifted_colour",
    "local_month",
    "month_add",
    "month_start_utc",
    "window_delta",
    "window_trigger",
]

#: float rounding allowed at an edge: 1 - 1.235 / 1.3 is 0.0499999..., and is a 5% decline
_EPS = 1e-9

#: colours from best to worst
COLOURS: tuple[Colour, ...] = (Colour.DARK_GREEN, Colour.LIGHT_GREEN, Colour.YELLOW, Colour.RED)


class LabelReason(StrEnum):
    """Why a label was emitted (`AccountLabel.reason`): the trigger, or why there is no colour."""

    FIRST_EVALUATION = "first_evaluation"
    EMISSIONS_CHANGE = "emissions_change"  # own windows changed (new, late, or a closed month)
    FACTOR_REVISION = "factor_revision"  # a window came back with another factor version
    DENOMINATOR_CHANGE = "denominator_change"
    BENCHMARK_CHANGE = "benchmark_change"
    REGISTRY_CHANGE = "registry_change"  # the account's area, industry or region changed
    NO_DENOMINATOR = "no_denominator"
    NO_BENCHMARK = "no_benchmark"
    INCOMPLETE_PERIOD = "incomplete_period"  # a month of the period has no window at all


@dataclass(frozen=True)
class BandRule:
    """Bands, lift, window and hysteresis of one area or industry."""

    dark_green: float = 0.8  # K at or below: dark green
    light_green: float = 1.2
    yellow: float = 2.0  # K above: red
    lift_decline: float = 0.05  # relative decline of intensity that lifts one step
    hysteresis: float = 0.02  # relative margin past a band edge needed to change band
    window_months: int = 12

    def __post_init__(self) -> None:
        if not 0 < self.dark_green < self.light_green < self.yellow:
            raise ValueError(
                f"band edges must grow: dark_green {self.dark_green} < light_green "
                f"{self.light_green} < yellow {self.yellow}"
            )
        if not 0 <= self.hysteresis < 1 or not 0 < self.lift_decline < 1:
            raise ValueError("hysteresis must be in [0, 1) and lift_decline in (0, 1)")
        if not 1 <= self.window_months <= 120:
            raise ValueError(f"window_months {self.window_months} out of 1..120")

    @property
    def edges(self) -> tuple[float, float, float]:
        """The upper edges of dark green, light green and yellow."""
        return (self.dark_green, self.light_green, self.yellow)


_RULE_FIELDS = {f for f in BandRule.__dataclass_fields__}


@dataclass(frozen=True)
class RuleBook:
    """The rule per area, refined per industry (longest GB/T 4754 code prefix wins)."""

    default: BandRule = field(default_factory=BandRule)
    areas: Mapping[str, BandRule] = field(default_factory=dict)
    industries: Mapping[str, BandRule] = field(default_factory=dict)

    def rule_for(self, area: str, industry_code: str) -> BandRule:
        """An account's rule: its industry's (longest prefix), else its area's, else default."""
        best = ""
        for code in self.industries:
            if industry_code.startswith(code) and len(code) > len(best):
                best = code
        if best:
            return self.industries[best]
        return self.areas.get(area, self.default)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> RuleBook:
        """Build from `{default: {...}, areas: {area: {...}}, industries: {code: {...}}}`.

        Areas and industries inherit what they do not set: industry ← its area if given as
        `area:` inside it, else ← default. Raises ValueError naming the bad entry.
        """
        unknown = set(data) - {"default", "areas", "industries"}
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)}; expected default, areas, industries")
        default = _rule(BandRule(), data.get("default") or {}, "default")
        areas: dict[str, BandRule] = {}
        for area, spec in (data.get("areas") or {}).items():
            if area not in {a.value for a in Area}:
                raise ValueError(f"areas.{area}: not an area ({', '.join(a.value for a in Area)})")
            areas[area] = _rule(default, spec or {}, f"areas.{area}")
        industries: dict[str, BandRule] = {}
        for code, spec in (data.get("industries") or {}).items():
            spec = dict(spec or {})
            base = areas.get(spec.pop("area", ""), default)
            industries[str(code)] = _rule(base, spec, f"industries.{code}")
        return cls(default, areas, industries)


def _rule(base: BandRule, spec: Mapping[str, Any], where: str) -> BandRule:
    spec = dict(spec)
    bands = spec.pop("bands", None) or {}
    unknown = (
        (set(spec) | {f"bands.{b}" for b in bands})
        - _RULE_FIELDS
        - {
            "bands.dark_green",
            "bands.light_green",
            "bands.yellow",
        }
    )
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    try:
        return replace(base, **spec, **bands)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from None


# ---------------------------------------------------------------- calendar


# cached: the labelling agent asks these per window, and windows share few instants
# (96 a day) and fewer months; all three are pure functions of immutable arguments
@lru_cache(maxsize=8192)
def local_month(ts: datetime, timezone: str) -> str:
    """The local calendar month ("YYYY-MM") of an instant."""
    return ts.astimezone(ZoneInfo(timezone)).strftime("%Y-%m")


@lru_cache(maxsize=8192)
def month_add(month: str, n: int) -> str:
    """`month` ("YYYY-MM") plus n months."""
    y, m = int(month[:4]), int(month[5:7])
    total = y * 12 + (m - 1) + n
    return f"{total // 12:04d}-{total % 12 + 1:02d}"


@lru_cache(maxsize=8192)
def month_start_utc(month: str, timezone: str) -> datetime:
    """The first instant of a local month, in UTC."""
    local = datetime(int(month[:4]), int(month[5:7]), 1, tzinfo=ZoneInfo(timezone))
    return local.astimezone(UTC)


def evaluation_period(latest_month: str, window_months: int) -> tuple[str, str]:
    """First and last month of the trailing closed months before `latest_month`."""
    return month_add(latest_month, -window_months), month_add(latest_month, -1)


# ---------------------------------------------------------------- state updates


def window_delta(
    previous: Sequence[Any] | None, revision: int, tco2e: float
) -> tuple[float, bool] | None:
    """How a window changes the sums: `(delta tCO2e, is a revision)`, or None to ignore it.

    `previous` is what is kept of the window: `[revision, tco2e, ...]`. A window replaces
    its earlier revision (never adds to it); an older or equal revision is a replay or a
    duplicate and changes nothing.
    """
    if previous is None:
        return tco2e, False
    if revision <= int(previous[0]):
        return None
    return tco2e - float(previous[1]), True


def window_trigger(latest: str | None, month: str, factor_changed: bool) -> LabelReason | None:
    """Why a window that changed an account's sums re-evaluates it, or None if it cannot
    change an evaluation.

    `latest`: the account's latest month before the window; `month`: the window's. A
    window of the open month (`latest`) changes nothing until the month closes; a later
    one closes it, an earlier one changes a closed month.
    """
    if latest is not None and month == latest:
        return None
    return LabelReason.FACTOR_REVISION if factor_changed else LabelReason.EMISSIONS_CHANGE


def combine_triggers(a: LabelReason | None, b: LabelReason | None) -> LabelReason | None:
    """The one trigger of windows evaluated together: a factor revision, if any of them
    was one (it explains the change better), else an emissions change; None if neither
    can change an evaluation."""
    if LabelReason.FACTOR_REVISION in (a, b):
        return LabelReason.FACTOR_REVISION
    return a or b


def batch_steps(latest: str | None, months: Sequence[str]) -> list[list[int]]:
    """How to take one account's windows of a batch: steps of indices into `months` (the
    windows' local months, in row order); apply each step's windows, then evaluate once.

    The windows go in month order, stable (rows of one month keep their order, so a
    replayed window stays a replay). The months up to `latest`, the account's latest
    month before the batch (late windows of closed months, and the open month), make one
    step: they change the same evaluation. Each later month makes a step of its own: it
    closes the month before it, which by then holds every row of the batch. So each
    month the batch closes is evaluated as its rows one by one in time order would
    evaluate it, and no period is evaluated before all of the batch's rows in it count.
    """
    steps: list[list[int]] = []
    step_month: str | None = None
    for i in sorted(range(len(months)), key=months.__getitem__):
        month = months[i]
        key = month if latest is None or month > latest else ""
        if not steps or key != step_month:
            steps.append([])
            step_month = key
        steps[-1].append(i)
    return steps


# ---------------------------------------------------------------- inputs


@dataclass(frozen=True)
class DenominatorValue:
    """A denominator over [start, end)."""

    start: datetime
    end: datetime
    value: float


@dataclass(frozen=True)
class BenchmarkValue:
    """A benchmark intensity over [start, end) for an area, industry code prefix and region."""

    area: str
    industry_code: str
    region: str  # "*": any region without a benchmark of its own
    start: datetime
    end: datetime
    value: float
    version: str

    def applies_to(self, area: str, industry_code: str, region: str) -> bool:
        """Whether the benchmark covers an account of this area, industry and region."""
        return (
            self.area == area
            and industry_code.startswith(self.industry_code)
            and self.region in (region, "*")
        )


def denominator_over(
    records: Iterable[DenominatorValue], start: datetime, end: datetime
) -> float | None:
    """The denominator over [start, end): records prorated by overlap; None if not covered.

    Overlapping records (a corrected period under another key) are not summed twice: the
    period must be covered exactly once by the union of the records used.
    """
    parts = sorted(
        (r for r in records if r.end > start and r.start < end and r.end > r.start),
        key=lambda r: r.start,
    )
    total, covered_to = 0.0, start
    for r in parts:
        if r.start > covered_to:
            return None  # a gap
        lo, hi = max(r.start, covered_to), min(r.end, end)
        if hi <= lo:
            continue
        total += r.value * (hi - lo).total_seconds() / (r.end - r.start).total_seconds()
        covered_to = hi
    return total if covered_to >= end else None


def benchmark_for(
    benchmarks: Iterable[BenchmarkValue],
    area: str,
    industry_code: str,
    region: str,
    start: datetime,
    end: datetime,
) -> BenchmarkValue | None:
    """The benchmark of an account for [start, end), or None.

    Most specific first (longest industry code, own region before `*`), then the largest
    overlap with the period, then the latest start.
    """
    best: tuple[Any, ...] | None = None
    chosen = None
    for b in benchmarks:
        if not b.applies_to(area, industry_code, region):
            continue
        overlap = (min(b.end, end) - max(b.start, start)).total_seconds()
        if overlap <= 0:
            continue
        rank = (len(b.industry_code), b.region != "*", overlap, b.start)
        if best is None or rank > best:
            best, chosen = rank, b
    return chosen


# ---------------------------------------------------------------- bands


def _bounds(colour: Colour, rule: BandRule) -> tuple[float, float]:
    lows = (-math.inf, *rule.edges)
    highs = (*rule.edges, math.inf)
    i = COLOURS.index(colour)
    return lows[i], highs[i]  # (lo, hi]


def band_of(k: float, rule: BandRule, previous: Colour | None = None) -> Colour:
    """The band of K; with `previous`, K must pass its edges by the hysteresis margin."""
    raw = next(
        (c for c, edge in zip(COLOURS, rule.edges, strict=False) if k <= edge + _EPS), Colour.RED
    )
    if previous is None or raw == previous:
        return raw
    lo, hi = _bounds(previous, rule)
    margin = rule.hysteresis
    if hi < k <= hi * (1 + margin):
        return previous  # just above the upper edge: stay
    if lo * (1 - margin) < k <= lo:
        return previous  # just below the lower edge: stay
    return raw


def lifted_colour(colour: Colour) -> Colour:
    """One step better, never above dark green."""
    return COLOURS[max(COLOURS.index(colour) - 1, 0)]


def _lifted(decline: float | None, rule: BandRule, previous: bool | None) -> bool:
    if decline is None:
        return False
    threshold = rule.lift_decline
    if previous is None:
        return decline >= threshold - _EPS
    if previous:
        return decline > threshold * (1 - rule.hysteresis) - _EPS  # stays unless clearly below
    return decline >= threshold * (1 + rule.hysteresis) - _EPS


def is_labelled(area: str) -> bool:
    """Residents (daily life) earn carbon-benefit points; every other account is labelled."""
    return area != Area.DAILY_LIFE


# ---------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class LabelState:
    """What is kept of an account's label between evaluations."""

    colour: Colour | None
    band: Colour | None  # the K band before the lift (hysteresis works on it)
    lifted: bool
    revision: int  # how many labels were emitted for the account

    def as_json(self) -> dict[str, Any]:
        """JSON-able form (Faust table value)."""
        return {
            "colour": self.colour,
            "band": self.band,
            "lifted": self.lifted,
            "revision": self.revision,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> LabelState | None:
        """Inverse of `as_json` (None stays None)."""
        if not data:
            return None
        return cls(
            Colour(data["colour"]) if data.get("colour") else None,
            Colour(data["band"]) if data.get("band") else None,
            bool(data.get("lifted")),
            int(data.get("revision", 0)),
        )


@dataclass(frozen=True)
class Evaluation:
    """The result of evaluating one account for one period."""

    colour: Colour | None
    band: Colour | None
    lifted: bool
    k: float | None
    intensity: float | None
    previous_intensity: float | None  # the same period a year earlier
    emissions: float
    denominator: float | None
    benchmark: float | None
    benchmark_version: str | None
    period_start: datetime
    period_end: datetime
    missing: LabelReason | None  # why colour is None: no_denominator, no_benchmark, ...


def evaluate(
    *,
    monthly_tco2e: Mapping[str, float],
    latest_month: str,
    timezone: str,
    area: str,
    industry_code: str,
    region: str,
    denominators: Iterable[DenominatorValue],
    benchmarks: Iterable[BenchmarkValue],
    rule: BandRule,
    previous: LabelState | None = None,
) -> Evaluation:
    """Evaluate an account over the trailing closed months before `latest_month`.

    `monthly_tco2e`: the account's emissions per local month ("YYYY-MM"). `previous`: the
    label kept from the last evaluation (hysteresis); None on the first evaluation.
    """
    first, last = evaluation_period(latest_month, rule.window_months)
    start, end = month_start_utc(first, timezone), month_start_utc(latest_month, timezone)
    denominators = list(denominators)
    emissions = _sum_months(monthly_tco2e, first, last)
    base = Evaluation(
        None, None, False, None, None, None, emissions, None, None, None, start, end, None
    )
    if not _complete(monthly_tco2e, first, rule.window_months):
        return replace(base, missing=LabelReason.INCOMPLETE_PERIOD)
    denominator = denominator_over(denominators, start, end)
    if denominator is None or denominator <= 0:
        return replace(base, missing=LabelReason.NO_DENOMINATOR)
    intensity = emissions / denominator
    bench = benchmark_for(benchmarks, area, industry_code, region, start, end)
    if bench is None or bench.value <= 0:
        return replace(
            base, denominator=denominator, intensity=intensity, missing=LabelReason.NO_BENCHMARK
        )
    k = intensity / bench.value
    band = band_of(k, rule, previous.band if previous else None)
    previous_intensity = _previous_intensity(
        monthly_tco2e, first, last, timezone, denominators, rule
    )
    decline = None
    if previous_intensity is not None and previous_intensity > 0:
        decline = 1 - intensity / previous_intensity
    lifted = _lifted(decline, rule, previous.lifted if previous and previous.band else None)
    colour = lifted_colour(band) if lifted else band
    return Evaluation(
        colour,
        band,
        lifted,
        k,
        intensity,
        previous_intensity,
        emissions,
        denominator,
        bench.value,
        bench.version,
        start,
        end,
        None,
    )


def _complete(monthly: Mapping[str, float], first: str, months: int) -> bool:
    return all(month_add(first, i) in monthly for i in range(months))


def _sum_months(monthly: Mapping[str, float], first: str, last: str) -> float:
    return sum(v for m, v in monthly.items() if first <= m <= last)


def _previous_intensity(
    monthly: Mapping[str, float],
    first: str,
    last: str,
    timezone: str,
    denominators: Sequence[DenominatorValue],
    rule: BandRule,
) -> float | None:
    # the same months a year earlier, all of them with windows; else: no history, no lift
    p_first, p_last = month_add(first, -12), month_add(last, -12)
    if not _complete(monthly, p_first, rule.window_months):
        return None
    start = month_start_utc(p_first, timezone)
    end = month_start_utc(month_add(p_last, 1), timezone)
    denominator = denominator_over(denominators, start, end)
    if denominator is None or denominator <= 0:
        return None
    return _sum_months(monthly, p_first, p_last) / denominator


def decide(
    previous: LabelState | None, evaluation: Evaluation, trigger: LabelReason
) -> tuple[LabelState, LabelReason | None]:
    """The label state after an evaluation, and the reason to emit a label (None: no change).

    A label is emitted on the first evaluation (even without a colour, so the reason is
    visible) and then only when the colour changes.
    """
    revision = previous.revision if previous else 0
    changed = previous is None or previous.colour != evaluation.colour
    state = LabelState(
        evaluation.colour,
        evaluation.band,
        evaluation.lifted,
        revision + 1 if changed else revision,
    )
    if not changed:
        return state, None
    if evaluation.missing is not None:
        return state, evaluation.missing
    return state, LabelReason.FIRST_EVALUATION if previous is None else trigger
