"""The cluster variant of the DDL: every statement parses on the ClickHouse engine, fact
tables are sharded by account behind Distributed, reference tables are copied whole."""

from __future__ import annotations

from click.testing import CliRunner

from sinks.cluster import REFERENCE_TABLES
from sinks.store import Store, ddl_statements
from streams.cli import cli


def _cluster_text() -> str:
    return "\n;\n".join(s for _, s in ddl_statements("ddl_cluster"))


def test_every_cluster_statement_parses(store: Store) -> None:
    statements = ddl_statements("ddl_cluster") + ddl_statements("migrations_cluster")
    assert any(s.startswith("ALTER TABLE emissions_15m_local") for _n, s in statements)
    for name, statement in statements:
        # formatQuery parses with ClickHouse's own parser, without needing a cluster
        (row,) = store.query("SELECT formatQuery({q:String})", {"q": statement}).result_rows
        if not statement.startswith("INSERT"):  # seeds go through the Distributed table
            assert "ON CLUSTER `{cluster}`" in row[0], name


def test_fact_tables_sharded_by_account_reference_tables_copied() -> None:
    text = _cluster_text()
    for fact in ("emissions_15m", "account_labels", "benefit_points", "energy_intervals"):
        assert f"CREATE TABLE IF NOT EXISTS {fact}_local ON CLUSTER '{{cluster}}'" in text
        assert (
            f"ENGINE = Distributed('{{cluster}}', currentDatabase(), {fact}_local, "
            "cityHash64(account_id))" in text
        )
    for ref in REFERENCE_TABLES:
        assert f"{ref}_local" not in text
        assert f"CREATE TABLE IF NOT EXISTS {ref} ON CLUSTER '{{cluster}}'" in text
        assert f"'/clickhouse/tables/all/{{database}}/{ref}'" in text
    assert "'/clickhouse/tables/{shard}/{database}/emissions_15m_local'" in text


def test_cli_prints_the_cluster_ddl_for_a_named_cluster() -> None:
    result = CliRunner().invoke(cli, ["infra", "cluster-ddl", "--cluster", "prod"])
    assert result.exit_code == 0, result.output
    assert "ON CLUSTER 'prod'" in result.output
    assert "'{cluster}'" not in result.output
    assert result.output.count("ENGINE = Distributed('prod'") >= 4
