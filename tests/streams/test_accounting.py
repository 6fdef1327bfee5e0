"""The accounting rules of issue 4: windows, factors, revisions; with hand-computed cases."""

from __future__ import annotations

import itertools
import math
import random
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.contracts import EmissionFactor
from schemas.factors import FactorBook, fuel_factor_check, load_factors
from streams.rules.accounting import Accountant, AccountState, split_interval
from tests.streams.test_normalise import MIN, T0, cols, row

BOOK = load_factors()


def accountant(regions: str = "*=national", book: FactorBook | None = None) -> Accountant:
    return Accountant(
        book or FactorBook(BOOK), grace_hours=6, retention_hours=24, grid_factor_regions=regions
    )


def by_start(windows: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    """Windows keyed by (energy type, minutes after T0)."""
    out = {}
    for w in windows:
        start = datetime.fromisoformat(w["window_start"])
        out[(w["energy_type"], int(start.timestamp() * 1000 - T0) // MIN)] = w
    return out


def test_split_in_proportion_to_time() -> None:
    # 30 over [00:10, 00:40): 5 min in [0, 15), 15 in [15, 30), 10 in [30, 45)
    got = split_interval(T0 + 10 * MIN, T0 + 40 * MIN, 30.0)
    assert [((ws - T0) // MIN, share) for ws, share in got] == [(0, 5.0), (15, 15.0), (30, 10.0)]


def test_windows_consumption_and_tco2e() -> None:
    acc = accountant()
    state = AccountState("A1")
    out = acc.process(state, cols(row(100.0, 10), row(130.0, 40)))
    w = by_start(out.windows)
    assert sorted(w) == [("electricity", 0), ("electricity", 15), ("electricity", 30)]
    mid = w[("electricity", 15)]
    assert mid["consumption"] == 15.0
    # 2026 falls under the latest published national average (2023): 0.5306 kg/kWh
    assert mid["factor_id"] == "grid-national-average-2023"
    assert mid["factor_version"] == "1"
    assert mid["factor_value"] == 0.5306 / 1000
    assert mid["factor_unit"] == "tCO2e/kWh"
    assert math.isclose(mid["tco2e"], 15.0 * 0.0005306)
    assert mid["unit"] == "kWh"
    assert mid["window_end"] == "2026-03-01T00:30:00+00:00"
    assert {x["revision"] for x in out.windows} == {1}


def test_grid_factor_region_is_configurable() -> None:
    acc = accountant("east_china=east_china,*=national")
    state = AccountState("A1")
    out = acc.process(state, cols(row(0.0, 0), row(1000.0, 15)), "east_china")
    (w,) = out.windows
    assert (w["factor_id"], w["factor_value"]) == ("grid-east-china-2023", 0.55 / 1000)
    assert math.isclose(w["tco2e"], 0.55)  # 1000 kWh x 0.55 kg/kWh = 550 kg


def test_factor_by_window_time() -> None:
    acc = accountant()
    got = {}
    for year in (2020, 2021, 2022, 2024):
        start = int(datetime(year, 6, 1, tzinfo=UTC).timestamp() * 1000)
        state = AccountState("A1")
        rows = [row(0.0, 0), row(1000.0, 15)]
        for r in rows:
            r["ts"] += start - T0
        (w,) = acc.process(state, cols(*rows)).windows
        got[year] = (w["factor_id"], round(w["tco2e"], 6))
    assert got == {
        2020: ("grid-national-average-2021", 0.5568),  # before the first year: the first one
        2021: ("grid-national-average-2021", 0.5568),
        2022: ("grid-national-average-2022", 0.5366),
        2024: ("grid-national-average-2023", 0.5306),  # latest published applies onwards
    }


def test_other_energy_types() -> None:
    acc = accountant()
    state = AccountState("A1")
    rows = []
    for meter, et, unit, a, b in [
        ("H", "heat", "GJ", 0.0, 10.0),  # 10 GJ x 0.11 = 1.1 t
        ("G", "natural_gas", "Nm3", 0.0, 1000.0),  # 1000 Nm3 x 2.1622 kg/Nm3 = 2.1622 t
        ("C", "raw_coal", "t", 5.0, 7.0),  # 2 t x 1.9003 = 3.8006 t
        ("S", "carbon_sink", "tCO2e", 0.0, 5.0),  # 5 t sequestered = -5 t
    ]:
        rows += [
            row(a, 0, meter=meter, energy_type=et, unit=unit),
            row(b, 15, meter=meter, energy_type=et, unit=unit),
        ]
    w = by_start(acc.process(state, cols(*rows)).windows)
    assert math.isclose(w[("heat", 0)]["tco2e"], 1.1)
    assert math.isclose(w[("natural_gas", 0)]["tco2e"], 2.1622, rel_tol=1e-4)
    assert math.isclose(w[("raw_coal", 0)]["tco2e"], 3.8006, rel_tol=1e-4)
    assert w[("carbon_sink", 0)]["tco2e"] == -5.0
    assert w[("raw_coal", 0)]["factor_id"] == "fuel-raw-coal"


def test_fuel_factors_computed_match_published() -> None:
    checks = fuel_factor_check()
    assert len(checks) == 6
    for _fuel, computed, published in checks:
        # NCV x carbon content x oxidation x 44/12 agrees with the published column to 4 digits
        assert abs(computed - published) < 1e-4


def test_late_data_revises_windows_and_revision_grows() -> None:
    acc = accountant()
    state = AccountState("A1")
    first = by_start(acc.process(state, cols(row(100.0, 0), row(130.0, 30))).windows)
    # 30 over [0, 30): 15 in each window
    assert {k: (w["consumption"], w["revision"]) for k, w in first.items()} == {
        ("electricity", 0): (15.0, 1),
        ("electricity", 15): (15.0, 1),
    }
    late = by_start(acc.process(state, cols(row(120.0, 15))).windows)
    # the late reading at 15 splits it: [0, 15) = 20, [15, 30) = 10
    assert {k: (w["consumption"], w["revision"]) for k, w in late.items()} == {
        ("electricity", 0): (20.0, 2),
        ("electricity", 15): (10.0, 2),
    }
    # a duplicate changes nothing and emits nothing
    assert acc.process(state, cols(row(120.0, 15))).windows == []


def test_uncertain_flag_reaches_the_window() -> None:
    acc = accountant()
    state = AccountState("A1")
    out = acc.process(state, cols(row(0.0, 0), row(1.0, 15, quality="uncertain"), row(2.0, 30)))
    assert [w["uncertain"] for w in out.windows] == [True, True]


def test_factor_revision_recomputes_with_a_new_revision() -> None:
    book = FactorBook(BOOK)
    acc = accountant(book=book)
    state = AccountState("A1")
    acc.process(state, cols(row(0.0, 0), row(1000.0, 15)))
    old = next(f for f in BOOK if f.factor_id == "grid-national-average-2023")
    revised = EmissionFactor(**{**old.asdict(), "value": 0.0006, "version": "2"})
    assert book.add(revised)
    assert not book.add(old)  # an older version never wins back
    (w,) = acc.recompute(state)
    assert (w["factor_version"], w["revision"], w["factor_value"]) == ("2", 2, 0.0006)
    assert math.isclose(w["tco2e"], 0.6)
    assert acc.recompute(state) == []  # nothing changed since


def test_state_round_trips_as_plain_data() -> None:
    import json

    acc = accountant()
    state = AccountState("A1")
    interval = row(1.0, 15, meter="I", kind="interval", period_start=0)
    acc.process(state, cols(row(0.0, 0), row(1000.0, 15), interval))
    again = AccountState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert again == state


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.integers(1, 40), st.floats(0, 99.0)),  # (minutes after previous, increment)
        min_size=1,
        max_size=10,
    ),
    start=st.floats(0, 99.0),
    seed=st.integers(0, 2**32),
    batches=st.integers(1, 5),
)
def test_any_arrival_order_within_grace_gives_last_minus_first(
    steps: list[tuple[int, float]], start: float, seed: int, batches: int
) -> None:
    """For any order of arrival within grace, the final windows' total is the true use.

    The counter wraps at counter_max = 100 (each step adds < 100, so at most one
    rollover a step); the true consumption is the sum of the increments, i.e.
    last - first + 100 x rollovers.
    """
    true = start
    minute = 0
    readings = [row(start, 0, counter_max=100.0)]
    for gap, inc in steps:
        true += inc
        minute += gap  # at most 10 x 40 min = 6 h 40 min ... keep within grace:
        readings.append(row(true % 100.0, min(minute, 359), counter_max=100.0))
    # keep distinct times (gaps clipped at 359 min may collide): drop later duplicates of ts
    seen: dict[int, dict[str, Any]] = {}
    for r in readings:
        seen.setdefault(r["ts"], r)
    readings = sorted(seen.values(), key=lambda r: r["ts"])
    expected = 0.0
    for a, b in itertools.pairwise(readings):
        expected += (b["value"] - a["value"]) % 100.0
    rng = random.Random(seed)
    order = readings[:]
    rng.shuffle(order)
    acc = accountant()
    state = AccountState("A1")
    final: dict[tuple[str, str], dict[str, Any]] = {}
    cut = sorted(rng.sample(range(1, len(order) + 1), min(batches, len(order))))
    at = 0
    for end in [*cut, len(order)]:
        if end > at:
            out = acc.process(state, cols(*order[at:end]))
            assert out.normalised.rejected == []
            for w in out.windows:
                final[(w["energy_type"], w["window_start"])] = w
            at = end
    total = sum(w["consumption"] for w in final.values())
    assert math.isclose(total, expected, rel_tol=1e-9, abs_tol=1e-6)
    for w in final.values():
        assert math.isclose(w["tco2e"], w["consumption"] * w["factor_value"], abs_tol=1e-12)
