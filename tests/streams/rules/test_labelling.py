"""The pure labelling rule: band edges, the lift, hysteresis, missing data, windows."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas.contracts import Colour
from streams.rules.labelling import (
    BandRule,
    BenchmarkValue,
    DenominatorValue,
    LabelReason,
    LabelState,
    RuleBook,
    band_of,
    batch_steps,
    benchmark_for,
    combine_triggers,
    decide,
    denominator_over,
    evaluate,
    local_month,
    month_add,
    month_start_utc,
    window_delta,
    window_trigger,
)

RULE = BandRule()
DG, LG, Y, R = Colour.DARK_GREEN, Colour.LIGHT_GREEN, Colour.YELLOW, Colour.RED


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("k", "colour"),
    [
        (-3.0, DG),  # a sink (negative emissions)
        (0.8, DG),  # each edge belongs to the better band (K <= edge)
        (0.800001, LG),
        (1.2, LG),
        (1.200001, Y),
        (2.0, Y),
        (2.000001, R),
    ],
)
def test_band_edges(k: float, colour: Colour) -> None:
    assert band_of(k, RULE) == colour


@pytest.mark.parametrize(
    ("previous", "k", "colour"),
    [
        # margin 2% of the edge: 1.2 * 1.02 = 1.224, 1.2 * 0.98 = 1.176
        (LG, 1.223, LG),  # just above light green's upper edge: stays
        (LG, 1.225, Y),  # past the margin: changes
        (Y, 1.177, Y),  # just below yellow's lower edge (1.2): stays
        (Y, 1.175, LG),
        (DG, 0.815, DG),  # 0.8 * 1.02 = 0.816
        (DG, 0.817, LG),
        (R, 1.97, R),  # 2.0 * 0.98 = 1.96
        (R, 1.95, Y),
        (DG, 2.5, R),  # a jump over several bands is not held back
    ],
)
def test_hysteresis_keeps_a_band_near_its_edge(previous: Colour, k: float, colour: Colour) -> None:
    assert band_of(k, RULE, previous) == colour


def _evaluate(
    current: float, earlier: float | None, bench: float = 1.0, previous: LabelState | None = None
) -> tuple[Colour | None, float | None, bool]:
    # 12 closed months 2025-01..2025-12 of `current`/12 t each, latest month 2026-01;
    # value added 1000 in 2025 and (if `earlier`) 2024 months of `earlier`/12 t each.
    months = {f"2025-{m:02d}": current / 12 for m in range(1, 13)} | {"2026-01": 999.0}
    if earlier is not None:
        months |= {f"2024-{m:02d}": earlier / 12 for m in range(1, 13)}
    ev = evaluate(
        monthly_tco2e=months,
        latest_month="2026-01",
        timezone="UTC",
        area="industry",
        industry_code="C2614",
        region="east_china",
        denominators=[
            DenominatorValue(_utc(2024, 1, 1), _utc(2025, 1, 1), 1000.0),
            DenominatorValue(_utc(2025, 1, 1), _utc(2026, 1, 1), 1000.0),
        ],
        benchmarks=[
            BenchmarkValue("industry", "C26", "*", _utc(2024, 1, 1), _utc(2027, 1, 1), bench, "v1")
        ],
        rule=RULE,
        previous=previous,
    )
    return ev.colour, ev.k, ev.lifted


def test_intensity_and_k_over_the_trailing_closed_months() -> None:
    # 1200 t / 1000 (10k yuan) = 1.2; K = 1.2 / 1.0; the open month 2026-01 is not counted
    colour, k, lifted = _evaluate(1200.0, None)
    assert k == pytest.approx(1.2)
    assert (colour, lifted) == (LG, False)


def test_decline_of_five_percent_lifts_one_step() -> None:
    # 2024: 1300 t / 1000 = 1.3; 2025: 1.235 = 1.3 * 0.95, exactly 5% down -> lifted
    colour, k, lifted = _evaluate(1235.0, 1300.0)
    assert k == pytest.approx(1.235)
    assert (colour, lifted) == (LG, True)  # yellow band, lifted to light green
    colour, _, lifted = _evaluate(1236.0, 1300.0)  # 4.92% down: not lifted
    assert (colour, lifted) == (Y, False)


def test_lift_never_goes_above_dark_green() -> None:
    colour, k, lifted = _evaluate(500.0, 1000.0)  # K 0.5, 50% down
    assert (colour, lifted, k) == (DG, True, pytest.approx(0.5))


def test_lift_has_hysteresis_too() -> None:
    # previously lifted: stays lifted down to 5% * 0.98 = 4.9% decline
    lifted_state = LabelState(LG, Y, True, 1)
    assert _evaluate(1236.0, 1300.0, previous=lifted_state)[2] is True  # 4.92% down
    assert _evaluate(1237.5, 1300.0, previous=lifted_state)[2] is False  # 4.81% down
    # previously not lifted: needs 5% * 1.02 = 5.1%
    plain = LabelState(Y, Y, False, 1)
    assert _evaluate(1235.0, 1300.0, previous=plain)[2] is False  # exactly 5%
    assert _evaluate(1233.0, 1300.0, previous=plain)[2] is True  # 5.15%


def test_no_benchmark_and_no_denominator_give_no_colour() -> None:
    base = dict(
        monthly_tco2e={f"2025-{m:02d}": 10.0 / 12 for m in range(1, 13)},
        latest_month="2026-01",
        timezone="UTC",
        area="industry",
        industry_code="C2614",
        region="east_china",
        rule=RULE,
    )
    full = [DenominatorValue(_utc(2025, 1, 1), _utc(2026, 1, 1), 10.0)]
    other = [BenchmarkValue("industry", "C30", "*", _utc(2025, 1, 1), _utc(2026, 1, 1), 1, "v")]
    ev = evaluate(**base, denominators=full, benchmarks=other)
    assert (ev.colour, ev.missing) == (None, LabelReason.NO_BENCHMARK)
    assert ev.intensity == pytest.approx(1.0)  # 10 t / 10
    half = [DenominatorValue(_utc(2025, 1, 1), _utc(2025, 7, 1), 10.0)]  # stops mid-period
    ev = evaluate(**base, denominators=half, benchmarks=other)
    assert (ev.colour, ev.missing, ev.k) == (None, LabelReason.NO_DENOMINATOR, None)


def test_a_month_without_windows_gives_no_colour() -> None:
    months = {f"2025-{m:02d}": 10.0 for m in range(1, 13) if m != 7}  # July missing
    ev = evaluate(
        monthly_tco2e=months,
        latest_month="2026-01",
        timezone="UTC",
        area="industry",
        industry_code="C26",
        region="r",
        denominators=[DenominatorValue(_utc(2025, 1, 1), _utc(2026, 1, 1), 10.0)],
        benchmarks=[
            BenchmarkValue("industry", "C26", "*", _utc(2025, 1, 1), _utc(2026, 1, 1), 1, "v")
        ],
        rule=RULE,
    )
    assert (ev.colour, ev.missing) == (None, LabelReason.INCOMPLETE_PERIOD)
    # a year earlier with a gap: no lift (2024 down 50% but June 2024 missing)
    months = {f"2025-{m:02d}": 10.0 for m in range(1, 13)}
    months |= {f"2024-{m:02d}": 20.0 for m in range(1, 13) if m != 6}
    ev = evaluate(
        monthly_tco2e=months,
        latest_month="2026-01",
        timezone="UTC",
        area="industry",
        industry_code="C26",
        region="r",
        denominators=[
            DenominatorValue(_utc(2024, 1, 1), _utc(2025, 1, 1), 100.0),
            DenominatorValue(_utc(2025, 1, 1), _utc(2026, 1, 1), 100.0),
        ],
        benchmarks=[
            BenchmarkValue("industry", "C26", "*", _utc(2025, 1, 1), _utc(2026, 1, 1), 1, "v")
        ],
        rule=RULE,
    )
    # intensity 120 t / 100 = 1.2 (light green); no lift without a whole year earlier
    assert (ev.colour, ev.lifted, ev.previous_intensity) == (LG, False, None)


def test_denominator_is_prorated_by_overlap() -> None:
    # 2025-07..2026-06 from two calendar years: half of 100 + half of 300 (by seconds)
    recs = [
        DenominatorValue(_utc(2025, 1, 1), _utc(2026, 1, 1), 100.0),
        DenominatorValue(_utc(2026, 1, 1), _utc(2027, 1, 1), 300.0),
    ]
    got = denominator_over(recs, _utc(2025, 7, 1), _utc(2026, 7, 1))
    expected = 100.0 * 184 / 365 + 300.0 * 181 / 365  # Jul-Dec 184 days, Jan-Jun 181 days
    assert got == pytest.approx(expected)
    assert denominator_over(recs[:1], _utc(2025, 7, 1), _utc(2026, 7, 1)) is None


def test_benchmark_choice_most_specific_then_overlap() -> None:
    start, end = _utc(2025, 1, 1), _utc(2026, 1, 1)
    wide = BenchmarkValue("industry", "C26", "*", start, end, 2.0, "a")
    exact = BenchmarkValue("industry", "C2614", "*", start, end, 3.0, "b")
    regional = BenchmarkValue("industry", "C2614", "east_china", start, end, 4.0, "c")
    assert benchmark_for([wide], "industry", "C2614", "east_china", start, end) is wide
    assert benchmark_for([wide, exact], "industry", "C2614", "x", start, end) is exact
    assert benchmark_for([wide, exact, regional], "industry", "C2614", "east_china", start, end)
    assert benchmark_for([regional], "industry", "C2614", "west", start, end) is None
    assert benchmark_for([wide], "energy", "C2614", "east_china", start, end) is None


def test_decide_emits_only_on_colour_change() -> None:
    ev = evaluate(
        monthly_tco2e={f"2025-{m:02d}": 10.0 / 12 for m in range(1, 13)},
        latest_month="2026-01",
        timezone="UTC",
        area="industry",
        industry_code="C26",
        region="r",
        denominators=[DenominatorValue(_utc(2025, 1, 1), _utc(2026, 1, 1), 10.0)],
        benchmarks=[
            BenchmarkValue("industry", "C26", "*", _utc(2025, 1, 1), _utc(2026, 1, 1), 1, "v")
        ],
        rule=RULE,
    )
    state, reason = decide(None, ev, LabelReason.EMISSIONS_CHANGE)
    assert (state.colour, state.revision, reason) == (LG, 1, LabelReason.FIRST_EVALUATION)
    again, reason = decide(state, ev, LabelReason.EMISSIONS_CHANGE)
    assert (again.revision, reason) == (1, None)
    red = LabelState(R, R, False, 4)
    changed, reason = decide(red, ev, LabelReason.BENCHMARK_CHANGE)
    assert (changed.revision, reason) == (5, LabelReason.BENCHMARK_CHANGE)


def test_window_revision_replaces_never_adds() -> None:
    assert window_delta(None, 0, 2.5) == (2.5, False)
    assert window_delta([0, 2.5, "v1"], 1, 3.0) == (pytest.approx(0.5), True)
    assert window_delta([1, 3.0, "v1"], 1, 3.0) is None  # a replay
    assert window_delta([2, 3.0, "v1"], 1, 9.0) is None  # an older revision


def test_only_a_window_outside_the_open_month_triggers_an_evaluation() -> None:
    ec, fr = LabelReason.EMISSIONS_CHANGE, LabelReason.FACTOR_REVISION
    assert window_trigger(None, "2025-03", False) == ec  # the account's first window
    assert window_trigger("2025-03", "2025-03", True) is None  # the open month
    assert window_trigger("2025-03", "2025-04", False) == ec  # closes 2025-03
    assert window_trigger("2025-03", "2025-01", True) == fr  # a closed month revised
    assert combine_triggers(None, ec) == ec
    assert combine_triggers(fr, ec) == combine_triggers(ec, fr) == fr
    assert combine_triggers(None, None) is None


def test_batch_steps_take_a_month_whole_before_closing_it() -> None:
    # the accounting agent's order (energy type, then window start) across 2026-01-01:
    # electricity Dec, Jan, then steam Dec, Jan. December (the open month) first, whole,
    # then January, which closes it: never December's steam after its close
    months = ["2025-12", "2026-01", "2025-12", "2026-01"]
    assert batch_steps("2025-12", months) == [[0, 2], [1, 3]]
    # late rows of closed months and the open month change one evaluation: one step;
    # each later month closes the one before it: a step each, in month order
    months = ["2026-02", "2025-11", "2026-01", "2026-03", "2026-02", "2025-10"]
    assert batch_steps("2026-01", months) == [[5, 1, 2], [0, 4], [3]]
    # a new account: every month closes the one before it
    assert batch_steps(None, ["2025-02", "2025-01", "2025-01"]) == [[1, 2], [0]]
    assert batch_steps("2025-01", []) == []


def test_a_straddling_batch_is_evaluated_on_the_whole_month() -> None:
    # December's steam row comes after January's first row; evaluated after each step
    # with a trigger, K is computed once, on December whole (12 x 100 t: K 1.2 against a
    # benchmark of 10 on a value added of 100). Row by row it would first be 1.10 (no
    # steam), then 1.2.
    monthly = {f"2025-{m:02d}": 100.0 for m in range(1, 12)} | {"2025-12": 0.0}
    rows = [("2025-12", 1.0), ("2026-01", 1.0), ("2025-12", 99.0), ("2026-01", 1.0)]
    latest, ks = "2025-12", []
    for step in batch_steps(latest, [m for m, _ in rows]):
        trigger = None
        for i in step:
            month, tco2e = rows[i]
            trigger = combine_triggers(trigger, window_trigger(latest, month, False))
            monthly[month] = monthly.get(month, 0.0) + tco2e
            latest = max(latest, month)
        if trigger is not None:
            ev = evaluate(
                monthly_tco2e=monthly,
                latest_month=latest,
                timezone="UTC",
                area="industry",
                industry_code="C2614",
                region="east",
                denominators=[DenominatorValue(_utc(2025, 1, 1), _utc(2026, 1, 1), 100.0)],
                benchmarks=[
                    BenchmarkValue(
                        "industry", "C26", "*", _utc(2025, 1, 1), _utc(2026, 1, 1), 10.0, "v"
                    )
                ],
                rule=RULE,
            )
            ks.append(ev.k)
    assert ks == [pytest.approx(1.2)]


def test_local_months() -> None:
    # 2025-01-31 17:00 UTC is 2025-02-01 01:00 in Asia/Shanghai
    assert local_month(_utc(2025, 1, 31, 17), "Asia/Shanghai") == "2025-02"
    assert local_month(_utc(2025, 1, 31, 15), "Asia/Shanghai") == "2025-01"
    assert month_add("2025-01", -13) == "2023-12"
    assert month_start_utc("2025-02", "Asia/Shanghai") == _utc(2025, 1, 31, 16)


def test_rulebook_per_area_and_industry() -> None:
    book = RuleBook.from_mapping(
        {
            "default": {"hysteresis": 0.03},
            "areas": {"energy": {"bands": {"yellow": 2.5}}},
            "industries": {"C30": {"area": "energy", "window_months": 6}, "C3011": {}},
        }
    )
    assert book.rule_for("industry", "C2614") == BandRule(hysteresis=0.03)
    assert book.rule_for("energy", "D4411").yellow == 2.5
    c30 = book.rule_for("industry", "C3021")
    assert (c30.yellow, c30.window_months, c30.hysteresis) == (2.5, 6, 0.03)
    assert book.rule_for("industry", "C3011") == BandRule(hysteresis=0.03)  # longest prefix
    with pytest.raises(ValueError, match="band edges"):
        RuleBook.from_mapping({"default": {"bands": {"dark_green": 1.5}}})
    with pytest.raises(ValueError, match="not an area"):
        RuleBook.from_mapping({"areas": {"mining": {}}})
