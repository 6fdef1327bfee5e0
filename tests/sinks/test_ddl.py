"""The SQL files: the cluster DDL is generated from the default one and up to date;
chdb-only syntax stays out of all shared SQL, server-only syntax out of the default DDL;
every column has a comment; times are DateTime64(3, 'UTC')."""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path

import pytest

from sinks.cluster import cluster_file, write_cluster_ddl
from sinks.store import Store, _split_sql, ddl_statements

SQL = Path(str(files("sinks").joinpath("sql")))
CHDB_ONLY = [
    r"\bPython\s*\(",
    r"\bFROM\s+INFILE\b",
    r"\bfile\s*\(",
    r"'/[^']*\.(csv|parquet|native)'",
]
SERVER_ONLY = [
    r"\bON\s+CLUSTER\b",
    r"\bReplicated\w*MergeTree\b",
    r"\bDistributed\s*\(",
    r"system\.query_log",
]


def _files(folder: str) -> list[Path]:
    return sorted((SQL / folder).glob("*.sql"))


@pytest.mark.parametrize("folder", ["ddl", "migrations"])
def test_cluster_ddl_is_generated_and_up_to_date(tmp_path: Path, folder: str) -> None:
    fresh = write_cluster_ddl(tmp_path, folder)
    assert [p.name for p in fresh] == [p.name for p in _files(folder)]
    for path in fresh:
        assert path.read_text() == (SQL / f"{folder}_cluster" / path.name).read_text(), (
            f"{folder}/{path.name}: run `python -m sinks.cluster`"
        )


def test_cluster_form_of_a_table() -> None:
    text = cluster_file("x.sql", (SQL / "ddl" / "010_emissions.sql").read_text())
    statements = _split_sql(text)
    assert len(statements) == 2
    assert (
        "ReplicatedReplacingMergeTree("
        "'/clickhouse/tables/{shard}/{database}/emissions_15m_local', '{replica}', revision)"
        in statements[0]
    )
    assert "ON CLUSTER '{cluster}'" in statements[0]
    assert "non_replicated_deduplication_window" not in statements[0]
    assert statements[1].endswith("cityHash64(account_id))")


@pytest.mark.parametrize(
    "folder", ["ddl", "ddl_cluster", "queries", "migrations", "migrations_cluster"]
)
def test_no_chdb_only_syntax_in_shared_sql(folder: str) -> None:
    for path in _files(folder):
        for pattern in CHDB_ONLY:
            assert not re.search(pattern, path.read_text(), re.I), f"{path.name}: {pattern}"


@pytest.mark.parametrize("folder", ["ddl", "queries", "migrations"])
def test_no_server_only_syntax_in_default_sql(folder: str) -> None:
    for path in _files(folder):
        for pattern in SERVER_ONLY:
            assert not re.search(pattern, path.read_text(), re.I), f"{path.name}: {pattern}"


def test_every_column_has_a_comment_and_times_are_utc_millis(store: Store) -> None:
    rows = store.query(
        "SELECT table, name, type, comment FROM system.columns WHERE database = currentDatabase()"
    ).result_rows
    tables = {t for t, *_ in rows}
    assert {
        "energy_intervals",
        "emissions_hourly",
        "emissions_daily",
        "emissions_monthly",
        "account_labels_current",
        "loan_products",
    } <= tables
    assert [(t, n) for t, n, _ty, c in rows if not c] == []
    times = [(t, n, ty) for t, n, ty, _c in rows if "DateTime" in ty]
    assert times and all("DateTime64(3, 'UTC')" in ty for _t, _n, ty in times), times


def test_loan_product_seed_is_written_once(store: Store) -> None:
    store.command(
        "INSERT INTO loan_products (product_id, name, lender, area, colour, eligible, "
        "credit_multiplier, rate_cut_bp, source, version) VALUES "
        "('p2', 'Bank loan', 'bank', 'industry', 'dark_green', true, 1.3, 40, 'bank', '1')"
    )
    store.apply_ddl()
    rows = store.query(
        "SELECT product_id, colour, credit_multiplier, rate_cut_bp FROM loan_products FINAL "
        "ORDER BY product_id, colour"
    ).result_rows
    assert rows == [
        ("industrial-carbon-reduction-loan", "dark_green", 1.5, 50.0),
        ("industrial-carbon-reduction-loan", "light_green", 1.2, 25.0),
        ("industrial-carbon-reduction-loan", "red", 0.0, 0.0),
        ("industrial-carbon-reduction-loan", "yellow", 1.0, 0.0),
        ("p2", "dark_green", 1.3, 40.0),
    ]


def test_ddl_statement_count_is_stable() -> None:
    # a fact table becomes two statements (_local + Distributed), a reference table one
    from sinks.cluster import REFERENCE_TABLES

    facts = [
        s
        for _n, s in ddl_statements("ddl")
        if s.startswith("CREATE TABLE") and s.split()[5] not in REFERENCE_TABLES
    ]
    assert len(ddl_statements("ddl_cluster")) == len(ddl_statements("ddl")) + len(facts)
