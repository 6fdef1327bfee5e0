"""Every catalogue query returns the hand-computed answer on the fixed data set
(tests/sinks/dataset.py explains each figure), on every tier; bad input is refused."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date

import pytest

from sinks.catalogue import CatalogueError, bind, catalogue, get_query, run_query
from sinks.store import Store
from sinks.writer import Writer
from tests.sinks import dataset
from tests.sinks.conftest import remote_store, server_url


@pytest.fixture(scope="module", params=["chdb", "http", "server"])
def loaded(request: pytest.FixtureRequest, chdb_store: Store) -> Iterator[Store]:
    """The data set loaded once per tier (the queries only read)."""
    database = f"test_catalogue_{uuid.uuid4().hex[:8]}"
    if request.param == "chdb":
        chdb_store.use_database(database)
        dataset.load(Writer(chdb_store))
        yield chdb_store
        chdb_store.command(f"DROP DATABASE IF EXISTS `{database}`")
        return
    dsn = request.getfixturevalue("chdb_http").dsn if request.param == "http" else server_url()
    store = remote_store(dsn, database)
    try:
        dataset.load(Writer(store))
        yield store
    finally:
        store.command(f"DROP DATABASE IF EXISTS `{database}`")
        store.close()


def _rows(store: Store, name: str, **params: str) -> dict[str, list[dict]]:
    return {r.section: r.records() for r in run_query(store, name, params)}


def test_catalogue_has_the_seven_queries() -> None:
    assert set(catalogue()) == {
        "loan-eligibility",
        "credit-report",
        "benefit-balance",
        "benefit-leaderboard",
        "emissions",
        "top-emitters",
        "colour-distribution",
    }


def test_loan_eligibility(loaded: Store) -> None:
    rows = _rows(loaded, "loan-eligibility", as_of=dataset.AS_OF)["eligibility"]
    got = {
        r["account_id"]: (
            r["colour"],
            r["tco2e_12m"],
            r["denominator_12m"],
            r["intensity"],
            r["benchmark"],
            r["k"],
            r["eligible"],
            r["credit_multiplier"],
            r["rate_cut_bp"],
        )
        for r in rows
    }
    # E1 6/10 = 0.6, /0.5 = 1.2 light green; E2 8/8 = 1.0, K 2.0 yellow; E3 1.5/10 = 0.15,
    # K 0.3, dark green as of AS_OF (its red label comes later); default product rule
    assert got == {
        "E1": ("light_green", 6.0, 10.0, 0.6, 0.5, 1.2, True, 1.2, 25.0),
        "E2": ("yellow", 8.0, 8.0, 1.0, 0.5, 2.0, True, 1.0, 0.0),
        "E3": ("dark_green", 1.5, 10.0, 0.15, 0.5, 0.3, True, 1.5, 50.0),
    }
    assert {r["product_id"] for r in rows} == {"industrial-carbon-reduction-loan"}


def test_credit_report(loaded: Store) -> None:
    got = _rows(loaded, "credit-report", account_id="E1", as_of=dataset.AS_OF)
    assert got["account"][0]["colour"] == "light_green"
    assert got["account"][0]["name"] == "Alpha Cement"
    # local months: the 2026-01-31T16:15Z window is February in Asia/Shanghai
    assert [(r["month"], r["energy_type"], r["tco2e"]) for r in got["emissions_by_month"]] == [
        (date(2026, 1, 1), "electricity", 2.0),
        (date(2026, 2, 1), "electricity", 3.0),
        (date(2026, 2, 1), "natural_gas", 1.0),
    ]
    # Jan 2.0 / 5 = 0.4; Feb (3 + 1) / 5 = 0.8
    assert [
        (r["month"], r["tco2e"], r["denominator"], r["intensity"]) for r in got["intensity_trend"]
    ] == [
        (date(2026, 1, 1), 2.0, 5.0, 0.4),
        (date(2026, 2, 1), 4.0, 5.0, 0.8),
    ]
    assert [(r["old_colour"], r["new_colour"], r["reason"]) for r in got["colour_history"]] == [
        (None, "yellow", "first_evaluation"),
        ("yellow", "light_green", "intensity_change"),
    ]
    # peers E1 0.6, E2 1.0, E3 0.15: one of the two others (E2) is higher -> 50 %
    pct = got["industry_percentile"][0]
    assert (pct["intensity"], pct["peers"], pct["peers_higher"], pct["better_than_pct"]) == (
        0.6,
        3,
        1,
        50.0,
    )
    assert [
        (r["product_id"], r["credit_multiplier"], r["rate_cut_bp"])
        for r in got["eligible_products"]
    ] == [("industrial-carbon-reduction-loan", 1.2, 25.0)]


def test_benefit_balance(loaded: Store) -> None:
    got = _rows(loaded, "benefit-balance", account_id="P1")
    # b1 sent twice counts once; b2 is 2026-02-01 01:00 local (still January in UTC)
    assert [(r["month"], r["behaviour"], r["events"], r["points"]) for r in got["by_month"]] == [
        (date(2026, 1, 1), "bus_trip", 1, 10.0),
        (date(2026, 2, 1), "bus_trip", 1, 10.0),
        (date(2026, 2, 1), "cycling_km", 1, 5.0),
    ]
    assert got["total"] == [{"events": 3, "reduction_g": 704.9, "points": 25.0}]


def test_benefit_leaderboard(loaded: Store) -> None:
    got = _rows(
        loaded,
        "benefit-leaderboard",
        district="kecheng",
        from_date="2026-01-01",
        to_date="2026-02-28",
    )["leaderboard"]
    assert [(r["rank"], r["account_id"], r["points"], r["events"]) for r in got] == [
        (1, "P1", 25.0, 3),
        (2, "P2", 8.0, 1),
    ]
    one = _rows(
        loaded,
        "benefit-leaderboard",
        district="kecheng",
        from_date="2026-01-01",
        to_date="2026-01-31",
        limit="1",
    )["leaderboard"]
    # January only: P1 has 10 (b1), P2 8
    assert [(r["account_id"], r["points"]) for r in one] == [("P1", 10.0)]


def test_emissions(loaded: Store) -> None:
    got = _rows(loaded, "emissions", from_date="2026-01-01", to_date="2026-02-28")["totals"]
    # Jan: E1 2.0 + E2 4.0; Feb: E1 3 + 1, E2 4, E3 1.5 (E3's 2025 window is out of range)
    assert [(r["period_start"], r["area"], r["accounts"], r["tco2e"]) for r in got] == [
        (date(2026, 1, 1), "industry", 2, 6.0),
        (date(2026, 2, 1), "industry", 3, 9.5),
    ]
    year = _rows(loaded, "emissions", from_date="2025-01-01", to_date="2026-12-31", period="year")
    assert [(r["period_start"], r["tco2e"]) for r in year["totals"]] == [
        (date(2025, 1, 1), 100.0),
        (date(2026, 1, 1), 15.5),
    ]


def test_top_emitters(loaded: Store) -> None:
    got = _rows(loaded, "top-emitters", from_date="2026-01-01", to_date="2026-02-28", limit="2")[
        "top"
    ]
    assert [(r["rank"], r["account_id"], r["tco2e"]) for r in got] == [
        (1, "E2", 8.0),
        (2, "E1", 6.0),
    ]
    none = _rows(
        loaded, "top-emitters", from_date="2026-01-01", to_date="2026-02-28", area="energy"
    )
    assert none["top"] == []


def test_colour_distribution(loaded: Store) -> None:
    got = _rows(loaded, "colour-distribution", from_date="2026-01-01", to_date="2026-03-31")
    # end of Jan: E1 yellow, E2 yellow, E3 light green; Feb: E1 light green, E3 dark green;
    # Mar: E3 red (2026-03-10)
    assert [(r["month"], r["colour"], r["accounts"]) for r in got["distribution"]] == [
        (date(2026, 1, 1), "light_green", 1),
        (date(2026, 1, 1), "yellow", 2),
        (date(2026, 2, 1), "dark_green", 1),
        (date(2026, 2, 1), "light_green", 1),
        (date(2026, 2, 1), "yellow", 1),
        (date(2026, 3, 1), "light_green", 1),
        (date(2026, 3, 1), "red", 1),
        (date(2026, 3, 1), "yellow", 1),
    ]


def test_a_parameter_never_changes_the_sql(loaded: Store) -> None:
    evil = "E1' OR 1=1 --"
    got = _rows(loaded, "benefit-balance", account_id=evil)
    assert got["by_month"] == []
    got = _rows(
        loaded, "top-emitters", from_date="2026-01-01", to_date="2026-02-28", area="x' OR '1'='1"
    )
    assert got["top"] == []


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("no-such-query", {}, "unknown query 'no-such-query'"),
        ("top-emitters", {"from_date": "2026-01-01"}, "missing parameter to_date"),
        (
            "top-emitters",
            {"from_date": "2026-01-01", "to_date": "soon"},
            "'soon' is not a valid Date",
        ),
        (
            "top-emitters",
            {"from_date": "2026-01-01", "to_date": "2026-01-02", "limit": "-1"},
            "not a valid UInt32",
        ),
        (
            "top-emitters",
            {"from_date": "2026-01-01", "to_date": "2026-01-02", "bogus": "1"},
            "unknown parameter(s) bogus",
        ),
        (
            "emissions",
            {"from_date": "2026-01-01", "to_date": "2026-01-02", "period": "week"},
            "not one of day, month, year",
        ),
        ("loan-eligibility", {"as_of": "2026-03-01T00:00:00"}, "has no UTC offset"),
    ],
)
def test_bad_parameters_are_refused(name: str, params: dict[str, str], message: str) -> None:
    with pytest.raises(CatalogueError, match=None) as err:
        bind(get_query(name), params)
    assert message in str(err.value)
