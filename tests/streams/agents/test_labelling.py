"""The labelling agent's state (LabelBook) and relabels: each trigger touches only the
accounts it affects. The agent's Faust wiring is tested end to end in tests/e2e/."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schemas.contracts import Account, AccountLabel, Benchmark, Denominator, EmissionWindow
from streams.agents.labelling import LabelBook
from streams.rules.labelling import LabelReason, RuleBook


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def account(account_id: str, industry: str, region: str, area: str = "industry") -> Account:
    return Account(
        account_id=account_id,
        area=area,
        name=account_id,
        region=region,
        district="d",
        industry_code=industry,
        denominator_unit="10k_yuan" if area != "daily_life" else "",
        timezone="UTC",
    )


def window(
    account_id: str,
    month: int,
    tco2e: float,
    revision: int = 0,
    version: str = "f1",
    year: int = 2025,
) -> EmissionWindow:
    start = _utc(year, month, 10, 8)
    return EmissionWindow(
        account_id=account_id,
        energy_type="electricity",
        window_start=start,
        window_end=start + timedelta(minutes=15),
        consumption=tco2e * 1000,
        unit="kWh",
        tco2e=tco2e,
        factor_id="grid-east_china",
        factor_version=version,
        factor_value=0.001,
        factor_unit="tCO2e/kWh",
        revision=revision,
    )


def denominator(account_id: str, value: float, year: int = 2025) -> Denominator:
    return Denominator(
        account_id=account_id,
        period_start=_utc(year, 1, 1),
        period_end=_utc(year + 1, 1, 1),
        value=value,
        unit="10k_yuan",
    )


def benchmark(industry: str, region: str, value: float, version: str = "v1") -> Benchmark:
    return Benchmark(
        area="industry",
        industry_code=industry,
        region=region,
        period_start=_utc(2025, 1, 1),
        period_end=_utc(2026, 1, 1),
        value=value,
        unit="tCO2e/10k_yuan",
        source="test",
        version=version,
    )


class Book:
    """A LabelBook over dicts, recording which accounts each trigger evaluated."""

    def __init__(self) -> None:
        self.evaluated: list[tuple[str, LabelReason]] = []
        self.book = LabelBook(
            RuleBook(),
            "UTC",
            accounts={},
            windows={},
            benchmarks={},
            on_evaluate=lambda a, t: self.evaluated.append((a, t)),
        )

    def take(self) -> list[tuple[str, LabelReason]]:
        out, self.evaluated = self.evaluated, []
        return out


def _key(b: Benchmark) -> str:
    return f"{b.area}|{b.industry_code}|{b.region}|{b.period_start.isoformat()}"


@pytest.fixture
def city() -> tuple[Book, list[AccountLabel]]:
    """Three labelled accounts and a resident, each with 100 t in every month of 2025 and a
    window in 2026-01 (closing 2025). Value added 100 (10k yuan) in 2025: intensity 12
    (tCO2e per 10k yuan).

    Benchmarks: C26 anywhere 10 (K 1.2, light green), C30 anywhere 12 (K 1.0, light green).
    """
    b = Book()
    labels: list[AccountLabel] = []
    accounts = [
        account("A1", "C2614", "east"),
        account("A2", "C2614", "west"),
        account("A3", "C3011", "east"),
        account("R1", "", "east", area="daily_life"),
    ]
    for bench in (benchmark("C26", "*", 10.0), benchmark("C30", "*", 12.0)):
        labels += b.book.on_benchmark(bench, _key(bench))
    for a in accounts:
        labels += b.book.on_account(a)
        labels += b.book.on_denominator(denominator(a.account_id, 100.0), "")
        for m in range(1, 13):
            labels += b.book.on_window(window(a.account_id, m, 100.0))
        labels += b.book.on_window(window(a.account_id, 1, 5.0, year=2026))
    b.take()
    return b, labels


def test_first_labels(city: tuple[Book, list[AccountLabel]]) -> None:
    b, labels = city
    got = [(x.account_id, x.new_colour, x.reason, x.revision, round(x.k or 0, 9)) for x in labels]
    # when 2025-01 closes (a February window), the period 2024-02..2025-01 has months
    # without any window: no colour, with the reason; nothing changes until 2026-01
    # closes 2025: K = (12 x 100 t / 100) / benchmark:
    # A1, A2: 12 / 10 = 1.2; A3: 12 / 12 = 1.0. The resident R1 is not labelled.
    assert got == [
        ("A1", None, "incomplete_period", 1, 0),
        ("A1", "light_green", "emissions_change", 2, 1.2),
        ("A2", None, "incomplete_period", 1, 0),
        ("A2", "light_green", "emissions_change", 2, 1.2),
        ("A3", None, "incomplete_period", 1, 0),
        ("A3", "light_green", "emissions_change", 2, 1.0),
    ]
    assert "R1" not in b.book.accounts or b.book.accounts["R1"]["account"] is None
    assert labels[1].period_start == _utc(2025, 1, 1)
    assert labels[1].period_end == _utc(2026, 1, 1)


def test_own_window_change_relabels_only_that_account(city: Any) -> None:
    b, _ = city
    # A1's March revised from 100 to 200 t: 1300 / 100 = 13, K 1.3 -> yellow (past 1.224)
    out = b.book.on_window(window("A1", 3, 200.0, revision=1))
    assert b.take() == [("A1", LabelReason.EMISSIONS_CHANGE)]
    assert [(x.account_id, x.old_colour, x.new_colour, x.reason) for x in out] == [
        ("A1", "light_green", "yellow", "emissions_change")
    ]
    assert out[0].revision == 3 and out[0].intensity == pytest.approx(13.0)
    # a replay of the same revision neither adds nor evaluates
    assert b.book.on_window(window("A1", 3, 200.0, revision=1)) == []
    assert b.take() == []
    # a window of the open month (2026-01) changes nothing until the month closes
    late_in_month = window("A1", 1, 50.0, year=2026).derive(window_start=_utc(2026, 1, 20))
    assert b.book.on_window(late_in_month) == []
    assert b.take() == []


def test_denominator_change_relabels_only_that_account(city: Any) -> None:
    b, _ = city
    # A2's value added 2025 revised to 50: 1200 / 50 = 24, K 2.4 -> red
    out = b.book.on_denominator(denominator("A2", 50.0), "")
    assert b.take() == [("A2", LabelReason.DENOMINATOR_CHANGE)]
    assert [(x.account_id, x.new_colour, x.reason) for x in out] == [
        ("A2", "red", "denominator_change")
    ]


def test_benchmark_change_relabels_only_its_industry_and_region(city: Any) -> None:
    b, _ = city
    # a C26 benchmark for region east only, 16: A1's K 12 / 16 = 0.75 -> dark green (past
    # 0.8 x 0.98 = 0.784). A2 (west) and A3 (C30) are not evaluated at all.
    bench = benchmark("C26", "east", 16.0, version="v2")
    out = b.book.on_benchmark(bench, _key(bench))
    assert b.take() == [("A1", LabelReason.BENCHMARK_CHANGE)]
    assert [(x.account_id, x.new_colour, x.benchmark, x.benchmark_version) for x in out] == [
        ("A1", "dark_green", 16.0, "v2")
    ]
    # withdrawn again (tombstone): A1 falls back to C26 "*" = 10, K 1.2
    out = b.book.on_benchmark(None, _key(bench))
    assert b.take() == [("A1", LabelReason.BENCHMARK_CHANGE)]
    assert [(x.account_id, x.new_colour) for x in out] == [("A1", "light_green")]


def test_factor_revision_arrives_as_revised_windows(city: Any) -> None:
    b, _ = city
    # a new factor version raises A3's 2025 windows from 100 to 125 t (revision 1), one by
    # one; only A3 is evaluated, 12 times. After n windows K = (1200 + 25 n) / 100 / 12; it
    # passes 1.2 x 1.02 = 1.224 at n = 11 (K = 1475 / 1200): one label, yellow.
    out = []
    for m in range(1, 13):
        out += b.book.on_window(window("A3", m, 125.0, revision=1, version="f2"))
    assert b.take() == [("A3", LabelReason.FACTOR_REVISION)] * 12
    assert [(x.account_id, x.new_colour, x.reason) for x in out] == [
        ("A3", "yellow", "factor_revision")
    ]
    assert out[0].k == pytest.approx(1475 / 1200)


def test_missing_benchmark_withdraws_the_colour(city: Any) -> None:
    b, _ = city
    bench = benchmark("C30", "*", 12.0)
    out = b.book.on_benchmark(None, _key(bench))
    assert [(x.account_id, x.old_colour, x.new_colour, x.reason) for x in out] == [
        ("A3", "light_green", None, "no_benchmark")
    ]


def test_flapping_is_held_by_hysteresis(city: Any) -> None:
    b, _ = city
    # A1 sits at K 1.2. March at 102 t: 1202 / 100 = 12.02, K 1.202 > 1.2 but within the
    # 2% margin (1.224): no change. March at 103: K 1.203, still held. Back to 100: held.
    for rev, t in enumerate((102.0, 103.0, 100.0), start=1):
        assert b.book.on_window(window("A1", 3, t, revision=rev)) == []
    # March at 125: K 1.225 > 1.224 -> yellow
    out = b.book.on_window(window("A1", 3, 125.0, revision=4))
    assert [x.new_colour for x in out] == ["yellow"]


def test_state_keeps_only_the_months_an_evaluation_needs(city: Any) -> None:
    b, _ = city
    # latest month 2026-01: an evaluation reads 2025-01..2025-12 and a year earlier
    # 2024-01..2024-12, so months before 2024-01 are neither kept nor counted
    windows_before = len(b.book.windows)
    assert b.book.on_window(window("A1", 12, 50.0, year=2023)) == []
    assert len(b.book.windows) == windows_before and b.take() == []
    assert b.book.on_window(window("A1", 1, 50.0, year=2024)) == []  # kept (no colour change)
    assert "2024-01" in b.book.accounts["A1"]["months"]
    # a window of 2028-03 moves the latest month: everything before 2026-03 is dropped
    b.book.on_window(window("A1", 3, 1.0, year=2028))
    assert sorted(b.book.accounts["A1"]["months"]) == ["2028-03"]
