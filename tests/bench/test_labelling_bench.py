"""Benchmark: the labelling agent's per-window work (LabelBook.on_window) and benefit
scoring, against decoding the same records from JSON (what any agent pays per record),
measured in the same run. Tiny in `make test`, full in `make bench`."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from schemas.codec import decode_json
from schemas.contracts import Account, Benchmark, BenefitEvent, Denominator, EmissionWindow
from schemas.settings import Settings
from streams.agents.benefit import PointsBook
from streams.agents.labelling import LabelBook
from streams.registry import benchmark_key, load_benefit_table
from streams.rules.labelling import RuleBook
from streams.simulate import benefit_events


def _median(fn: Callable[[], object], runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _windows(accounts: int, per_account: int) -> list[bytes]:
    # windows every ~6 hours over 25 months, so months close and accounts get evaluated
    step = timedelta(days=25 * 30 / per_account)
    out = []
    for a in range(accounts):
        for i in range(per_account):
            start = datetime(2024, 1, 1, tzinfo=UTC) + step * i
            out.append(
                EmissionWindow(
                    account_id=f"A{a}",
                    energy_type="electricity",
                    window_start=start,
                    window_end=start + timedelta(minutes=15),
                    consumption=1000.0,
                    unit="kWh",
                    tco2e=1.0 + (i % 7) * 0.1,
                    factor_id="f",
                    factor_version="v",
                    factor_value=0.001,
                    factor_unit="tCO2e/kWh",
                    revision=0,
                ).dumps()
            )
    return out


@pytest.mark.bench
def test_label_book_throughput(bench_full: bool) -> None:
    accounts, per_account = (100, 2000) if bench_full else (10, 200)
    raw = _windows(accounts, per_account)

    def decode_only() -> None:
        for r in raw:
            decode_json(EmissionWindow, r)

    def label() -> None:
        book = LabelBook(RuleBook(), "Asia/Shanghai", accounts={}, windows={}, benchmarks={})
        b = Benchmark(
            area="industry", industry_code="C26", region="*",
            period_start=datetime(2023, 1, 1, tzinfo=UTC),
            period_end=datetime(2027, 1, 1, tzinfo=UTC),
            value=1.0, unit="tCO2e/10k_yuan", source="bench", version="v",
        )  # fmt: skip
        book.on_benchmark(b, benchmark_key(b))
        for a in range(accounts):
            book.on_account(
                Account(account_id=f"A{a}", area="industry", name="a", region="r",
                        district="d", industry_code="C2614", denominator_unit="10k_yuan")
            )  # fmt: skip
            book.on_denominator(
                Denominator(account_id=f"A{a}", period_start=datetime(2023, 1, 1, tzinfo=UTC),
                            period_end=datetime(2027, 1, 1, tzinfo=UTC), value=4000.0,
                            unit="10k_yuan"), "",
            )  # fmt: skip
        for r in raw:
            book.on_window(decode_json(EmissionWindow, r))

    base = _median(decode_only)
    full = _median(label)
    n = len(raw)
    print(
        f"\nlabelling: {n} windows, {accounts} accounts: decode {n / base:,.0f}/s, "
        f"decode + on_window {n / full:,.0f}/s, ratio {full / base:.2f}x (medians of 3)"
    )
    assert full > base  # sanity: the labelling work includes the decoding


@pytest.mark.bench
def test_benefit_throughput(bench_full: bool) -> None:
    n = 100_000 if bench_full else 5_000
    raw = [json.dumps(e).encode() for e in benefit_events(5000, n, seed=3, duplicates=0, bad=0)]
    table = load_benefit_table(Settings())

    def decode_only() -> None:
        for r in raw:
            decode_json(BenefitEvent, r)

    def score() -> None:
        book = PointsBook(table, "Asia/Shanghai", 7, {})
        for r in raw:
            book.on_event(decode_json(BenefitEvent, r))

    base = _median(decode_only)
    full = _median(score)
    print(
        f"\nbenefit: {n} events: decode {n / base:,.0f}/s, decode + score {n / full:,.0f}/s, "
        f"ratio {full / base:.2f}x (medians of 3)"
    )
    assert full > base
