"""Every ClickHouse panel's SQL, macros expanded for a fixed range, runs on chdb and returns
the rows a reader expects, over a small demo-like city inserted here.

Expected values are worked out by hand from the rows inserted (see each comment).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dashboards.macros import expand
from dashboards.queries import SQL
from sinks.catalogue import run_query
from sinks.store import Store

JSON_DIR = Path(__file__).parents[2] / "dashboards" / "json"
START = datetime(2026, 3, 1, tzinfo=UTC)
END = datetime(2026, 3, 2, tzinfo=UTC)
HOUR = 3600

ACCOUNTS = [
    # account_id, area, name, region, district, industry_code, denominator_unit
    ("ENT-1", "industry", "Quzhou Steel", "east_china", "kecheng", "3110", "10k_yuan"),
    ("ENT-2", "industry", "Juhua Chemical", "east_china", "qujiang", "2614", "10k_yuan"),
    ("ENT-3", "energy", "Quzhou Power", "east_china", "kecheng", "4411", "MWh"),
    ("ENT-4", "construction", "Kecheng Mall", "central_china", "kecheng", "", "m2"),
    ("P-1", "daily_life", "Resident 1", "east_china", "kecheng", "", ""),
    ("P-2", "daily_life", "Resident 2", "east_china", "qujiang", "", ""),
]
#: tCO2e of each electricity window, 16 windows from 08:00 to 12:00 on 1 March
ELECTRICITY = {"ENT-1": 0.5, "ENT-2": 0.25, "ENT-3": 1.0, "ENT-4": 0.1}


def _t(hours: float, day: int = 1) -> datetime:
    return datetime(2026, 3, day, tzinfo=UTC) + timedelta(hours=hours)


def _window(account: str, energy: str, start: datetime, tco2e: float, revision: int) -> list:
    return [
        account, energy, start, start + timedelta(minutes=15), tco2e * 1000, "kWh", tco2e,
        "grid-east_china", "2024", 0.001, "tCO2e/kWh", False, revision,
    ]  # fmt: skip


def _insert_city(store: Store) -> None:
    store.insert(
        "accounts",
        [[*a, "Asia/Shanghai"] for a in ACCOUNTS],
        ["account_id", "area", "name", "region", "district", "industry_code",
         "denominator_unit", "timezone"],
    )  # fmt: skip
    windows = []
    for account, tco2e in ELECTRICITY.items():
        for i in range(16):
            windows.append(_window(account, "electricity", _t(8 + i / 4), tco2e, 0))
    for i in range(4):  # ENT-1 burns gas too: 4 windows of 0.2
        windows.append(_window("ENT-1", "natural_gas", _t(8 + i / 4), 0.2, 0))
    # outside the range: must not count
    windows.append(_window("ENT-2", "electricity", _t(9, day=5), 100.0, 0))
    columns = ["account_id", "energy_type", "window_start", "window_end", "consumption", "unit",
               "tco2e", "factor_id", "factor_version", "factor_value", "factor_unit",
               "uncertain", "revision"]  # fmt: skip
    # ENT-1's 08:00 window first arrives wrong (revision 0, 9 t) in its own insert, then is
    # revised to 0.5 t by the rows above (revision 1): FINAL must keep only revision 1
    store.insert("emissions_15m", [_window("ENT-1", "electricity", _t(8), 9.0, 0)], columns)
    windows[0] = _window("ENT-1", "electricity", _t(8), 0.5, 1)
    store.insert("emissions_15m", windows, columns)

    labels = [
        # account, area, industry, region, old, new, k, revision, ts
        ("ENT-1", "industry", "3110", "east_china", None, "red", 1.6, 1, _t(1)),
        ("ENT-1", "industry", "3110", "east_china", "red", "yellow", 1.1, 2, _t(10)),
        ("ENT-2", "industry", "2614", "east_china", None, "dark_green", 0.5, 1, _t(2)),
        ("ENT-3", "energy", "4411", "east_china", None, "light_green", 0.8, 1, _t(3)),
        ("ENT-3", "energy", "4411", "east_china", "light_green", "red", 1.7, 2, _t(3, day=3)),
        ("ENT-4", "construction", "", "central_china", None, "yellow", 1.0, 1, _t(4)),
        ("P-1", "daily_life", "", "east_china", None, "dark_green", 0.3, 1, _t(5)),
    ]
    store.insert(
        "account_labels",
        [[a, area, ind, reg, old, new, k, k * 2, 2.0, "2024", _t(0), _t(24), "intensity_change",
          rev, ts] for a, area, ind, reg, old, new, k, rev, ts in labels],
        ["account_id", "area", "industry_code", "region", "old_colour", "new_colour", "k",
         "intensity", "benchmark", "benchmark_version", "period_start", "period_end", "reason",
         "revision", "ts"],
    )  # fmt: skip
    points = [
        # event, person, points, reduction_g, ts, district
        ("E1", "P-1", 10.0, 100.0, _t(7), "kecheng"),
        ("E2", "P-1", 20.0, 200.0, _t(8), "kecheng"),
        ("E3", "P-1", 5.0, 50.0, _t(9), "kecheng"),
        ("E3", "P-1", 5.0, 50.0, _t(9), "kecheng"),  # a replayed duplicate: counts once
        ("E4", "P-2", 7.0, 70.0, _t(7), "qujiang"),
        ("E5", "P-2", 8.0, 80.0, _t(12), "qujiang"),
    ]
    for row in points:  # one insert each, so the duplicate is a separate part until FINAL
        event, person, pts, red, ts, district = row
        store.insert(
            "benefit_points",
            [[event, person, "bus_trip", 1.0, "trip", red, pts, False, ts, district]],
            ["event_id", "account_id", "behaviour", "quantity", "unit", "reduction_g",
             "points", "capped", "ts", "district"],
        )  # fmt: skip


def _run(store: Store, sql: str) -> list[dict[str, Any]]:
    result = store.query(expand(sql, START, END, interval_s=HOUR))
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


ICRL = "industrial-carbon-reduction-loan"  # the seeded product (sinks/sql/ddl)


def _loans(store: Store) -> list[tuple]:
    return [
        (r["colour"], r["product_id"], r["accounts"], r["credit_limit_multiplier"],
         r["rate_cut_bp"], r["eligible"])
        for r in _run(store, SQL["loan_eligibility"])
    ]  # fmt: skip


def _committed_sql() -> list[str]:
    out = []
    for path in sorted(JSON_DIR.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                if "rawSql" in target:
                    assert target["datasource"]["type"] == "grafana-clickhouse-datasource"
                    out.append(target["rawSql"])
    return out


@pytest.fixture
def city(store: Store) -> Store:
    _insert_city(store)
    return store


def test_every_committed_clickhouse_panel_returns_rows(city: Store) -> None:
    committed = _committed_sql()
    # the committed dashboards run exactly the catalogue in dashboards/queries.py
    assert sorted(committed) == sorted(SQL.values())
    for sql in committed:
        assert _run(city, sql), f"no rows for:\n{sql}"


def test_emissions_count_each_window_once_within_the_range(city: Store) -> None:
    # 16 x (0.5 + 0.25 + 1.0 + 0.1) electricity + 4 x 0.2 gas = 29.6 + 0.8 = 30.4; the
    # revision-0 9 t and the 100 t on 5 March do not count
    (total,) = _run(city, SQL["emissions_total"])
    assert total["tco2e"] == pytest.approx(30.4)
    by_area: dict[str, float] = {}
    for row in _run(city, SQL["emissions_by_area"]):
        by_area[row["area"]] = by_area.get(row["area"], 0.0) + row["tco2e"]
    # industry = ENT-1 8.8 + ENT-2 4.0; energy = ENT-3 16; construction = ENT-4 1.6
    assert by_area == pytest.approx({"industry": 12.8, "energy": 16.0, "construction": 1.6})
    hours = {row["time"].replace(tzinfo=UTC) for row in _run(city, SQL["emissions_by_region"])}
    assert hours == {_t(h) for h in (8, 9, 10, 11)}  # 1-hour buckets over 08:00-12:00
    regions = {row["region"] for row in _run(city, SQL["emissions_by_region"])}
    assert regions == {"east_china", "central_china"}
    industries = {row["industry_code"] for row in _run(city, SQL["emissions_by_industry"])}
    assert industries == {"3110", "2614", "4411", "(none)"}


def test_top_emitters_ranked_by_tonnes(city: Store) -> None:
    rows = _run(city, SQL["top_emitters"])
    assert [r["account_id"] for r in rows] == ["ENT-3", "ENT-1", "ENT-2", "ENT-4"]
    assert [r["tco2e"] for r in rows] == pytest.approx([16.0, 8.8, 4.0, 1.6])
    assert rows[0]["name"] == "Quzhou Power"


def test_colours_and_loans_as_of_the_end_of_the_range(city: Store) -> None:
    # latest label by 2 March: ENT-1 yellow (its 2nd revision), ENT-2 dark green, ENT-3 light
    # green (its red on 3 March is after the range), ENT-4 yellow, P-1 dark green
    colours = {r["colour"]: r["accounts"] for r in _run(city, SQL["colour_distribution"])}
    assert colours == {"dark_green": 2, "light_green": 1, "yellow": 2}
    # loans: enterprises only (P-1 is daily life), per product of their area; the seed has
    # one product, for industry, with the default rule (dark green 1.5/50, yellow 1.0/0):
    # ENT-2 dark green and ENT-1 yellow get it; ENT-3 (energy) and ENT-4 (construction)
    # have no product for their area
    assert _loans(city) == [
        ("dark_green", ICRL, 1, 1.5, 50, True),
        ("yellow", ICRL, 1, 1.0, 0, True),
        ("light_green", "(no product)", 1, None, None, False),
        ("yellow", "(no product)", 1, None, None, False),
    ]
    recent = _run(city, SQL["recent_label_changes"])
    # 6 changes on 1 March (ENT-3's on 3 March is outside), newest first
    assert len(recent) == 6
    assert (recent[0]["account_id"], recent[0]["old_colour"], recent[0]["new_colour"]) == (
        "ENT-1",
        "red",
        "yellow",
    )
    assert recent[0]["name"] == "Quzhou Steel"


def test_loan_panel_follows_the_loan_products_table(city: Store) -> None:
    columns = ["product_id", "name", "lender", "area", "colour", "eligible",
               "credit_multiplier", "rate_cut_bp", "source", "version", "updated_at"]  # fmt: skip
    later = datetime(2026, 6, 1, tzinfo=UTC)  # after the seed's 2026-01-01: these win
    city.insert(
        "loan_products",
        [
            # the bank stops lending to yellow industry accounts
            [ICRL, "Industrial Carbon Reduction Loan", "bank", "industry", "yellow", False,
             0.0, 0.0, "test", "2", later],
            # and a product for energy accounts appears: light green 1.3x, 30 bp
            ["energy-transition-loan", "Energy Transition Loan", "bank", "energy",
             "light_green", True, 1.3, 30.0, "test", "1", later],
        ],
        columns,
    )  # fmt: skip
    # ENT-1 (industry, yellow) now not eligible; ENT-3 (energy, light green) gets the new
    # product; ENT-2 unchanged; ENT-4 (construction) still has none. Named products first.
    expected = [
        ("light_green", "energy-transition-loan", 1, 1.3, 30, True),
        ("dark_green", ICRL, 1, 1.5, 50, True),
        ("yellow", ICRL, 1, 0.0, 0, False),
        ("yellow", "(no product)", 1, None, None, False),
    ]
    assert _loans(city) == expected
    # the catalogue's loan-eligibility query reads the same terms for the same accounts
    terms = {}
    for area in ("industry", "energy"):
        (result,) = run_query(city, "loan-eligibility", {"as_of": END.isoformat(), "area": area})
        for row in result.rows:
            r = dict(zip(result.columns, row, strict=True))
            if r["product_id"]:
                terms[(r["colour"], r["product_id"])] = (
                    r["credit_multiplier"],
                    r["rate_cut_bp"],
                    r["eligible"],
                )
    assert terms == {(c, p): (m, bp, e) for c, p, _n, m, bp, e in expected[:3]}


def test_benefit_by_district_counts_a_replayed_event_once(city: Store) -> None:
    rows = {r["district"]: r for r in _run(city, SQL["benefit_by_district"])}
    # kecheng: P-1's E1 10 + E2 20 + E3 5 (twice inserted, once counted) = 35 points, 350 g
    assert rows["kecheng"]["points"] == 35.0
    assert rows["kecheng"]["events"] == 3
    assert rows["kecheng"]["reduction_tco2e"] == pytest.approx(350 / 1e6)
    assert (rows["qujiang"]["points"], rows["qujiang"]["residents"]) == (15.0, 1)
