"""The cluster variant of the DDL: every statement parses on the ClickHouse engine, fact
tables are sharded by account behind Distributed, reference tables are copied whole."""

from __future__ import annotations

from click.testing import CliRunner

from infra.clickhouse_cluster import REFERENCE_TABLES, cluster_ddl
from sinks.store import Store, ddl_statements
from streams.cli import cli

MV = """CREATE MATERIALIZED VIEW IF NOT EXISTS emissions_1h_mv TO emissions_1h
AS SELECT account_id, toStartOfHour(window_start) AS hour, sum(tco2e) AS tco2e
FROM emissions_15m GROUP BY account_id, hour"""
ROLLUP = """CREATE TABLE IF NOT EXISTS emissions_1h
(account_id String, hour DateTime, tco2e Float64)
ENGINE = SummingMergeTree ORDER BY (account_id, hour)"""


def _statements() -> list[str]:
    return [s for _, s in ddl_statements()] + [ROLLUP, MV]


def test_every_cluster_statement_parses(store: Store) -> None:
    statements = cluster_ddl(_statements(), cluster="city")
    for statement in statements:
        # formatQuery parses with ClickHouse's own parser, without needing a cluster
        formatted = store.query("SELECT formatQuery({q:String})", {"q": statement}).result_rows
        assert "ON CLUSTER city" in formatted[0][0]


def test_fact_tables_sharded_by_account_reference_tables_copied() -> None:
    statements = cluster_ddl(_statements(), cluster="city")
    text = "\n;\n".join(statements)
    # each fact table (with account_id) becomes two statements; the rest stay one each
    facts = [s for s in _statements() if "account_id" in s and "VIEW" not in s]
    refs = [s for s in facts if any(f"EXISTS {r}\n" in s for r in REFERENCE_TABLES)]
    assert len(statements) == len(_statements()) + len(facts) - len(refs)
    for fact in ("emissions_15m", "account_labels", "benefit_points", "emissions_1h"):
        assert f"CREATE TABLE IF NOT EXISTS {fact}_local ON CLUSTER 'city'" in text
        assert (
            f"ENGINE = Distributed('city', currentDatabase(), {fact}_local, cityHash64(account_id))"
            in text
        )
    for ref in ("accounts", "denominators", "benchmarks", "emission_factors"):
        assert f"{ref}_local" not in text
    assert (
        "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', "
        "'{replica}', revision)" in text
    )
    assert (
        "ReplicatedReplacingMergeTree('/clickhouse/tables/all/{database}/{table}', "
        "'{replica}', updated_at)" in text
    )
    # the view reads and writes its shard's tables
    (view,) = [s for s in statements if "MATERIALIZED VIEW" in s]
    assert "TO emissions_1h_local" in view
    assert "FROM emissions_15m_local" in view
    assert "emissions_1h_mv ON CLUSTER" in view


def test_cli_prints_the_cluster_ddl() -> None:
    result = CliRunner().invoke(cli, ["infra", "cluster-ddl", "--cluster", "prod"])
    assert result.exit_code == 0, result.output
    assert "ON CLUSTER 'prod'" in result.output
    # at least the foundation's 3 fact tables: emissions_15m, account_labels, benefit_points
    assert result.output.count("ENGINE = Distributed('prod'") >= 3
