"""Versioned schema migrations on the real engine: an old store is brought up to date with
its data kept, a second run does nothing, a changed applied migration is refused, and
`carbon-accounts store status|migrate` work over HTTP (tier 2) as they do on chdb."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path

import pytest
from click.testing import CliRunner

from sinks.migrations import MigrationError, migrate, migrations, plan, status
from sinks.store import Store, ddl_statements
from streams.cli import cli
from tests.sinks.conftest import ChdbHttp

SQL = Path(str(files("sinks").joinpath("sql")))

#: emissions_15m as the foundation commit created it: no utc_offset_minutes, and no
#: deduplication window (so the sink's insert_deduplication_token did nothing)
OLD_EMISSIONS = """CREATE TABLE emissions_15m
(
    account_id String, energy_type LowCardinality(String), window_start DateTime64(3, 'UTC'),
    window_end DateTime64(3, 'UTC'), consumption Float64, unit LowCardinality(String),
    tco2e Float64, factor_id LowCardinality(String), factor_version LowCardinality(String),
    factor_value Float64, factor_unit LowCardinality(String), uncertain Bool, revision UInt32
)
ENGINE = ReplacingMergeTree(revision)
PARTITION BY toYYYYMM(window_start)
ORDER BY (account_id, energy_type, window_start)"""
COLUMNS = ["account_id", "energy_type", "window_start", "window_end", "consumption", "unit",
           "tco2e", "factor_id", "factor_version", "factor_value", "factor_unit", "uncertain",
           "revision"]  # fmt: skip


def _row(account: str, hour: int, tco2e: float, revision: int = 1) -> list:
    start = datetime(2026, 3, 1, hour, tzinfo=UTC)
    end = datetime(2026, 3, 1, hour, 15, tzinfo=UTC)
    return [account, "electricity", start, end, tco2e * 1000, "kWh", tco2e, "grid", "2024",
            0.001, "tCO2e/kWh", False, revision]  # fmt: skip


@pytest.fixture
def bare(backend: Store, unique: str) -> Iterator[Store]:
    """The backend's store on a second, empty database (no DDL, no schema_migrations)."""
    database = f"test_{unique}_bare"
    backend.use_database(database, apply_ddl=False)
    try:
        yield backend
    finally:
        # back first: an HTTP client names its database in every request
        backend.use_database(f"test_{unique}", apply_ddl=False)
        backend.command(f"DROP DATABASE IF EXISTS `{database}`")


def _applied(store: Store) -> list[tuple]:
    return store.query(
        "SELECT version, name, checksum, applied_at FROM schema_migrations FINAL ORDER BY version"
    ).result_rows


def test_an_old_store_gets_the_new_column_and_keeps_its_data(bare: Store) -> None:
    bare.command(OLD_EMISSIONS)
    # two windows of A (0.5 t, and 9 t revised to 2 t) and one of B (1.25 t)
    bare.insert("emissions_15m", [_row("A", 8, 0.5), _row("A", 9, 9.0), _row("B", 8, 1.25)],
                COLUMNS)  # fmt: skip
    bare.insert("emissions_15m", [_row("A", 9, 2.0, revision=2)], COLUMNS)
    # the old idempotent DDL could not help: the views need the missing column
    assert not bare.query(
        "SELECT count() FROM system.columns WHERE database = currentDatabase() "
        "AND table = 'emissions_15m' AND name = 'utc_offset_minutes'"
    ).result_rows[0][0]

    assert bare.apply_ddl() > 0

    (column,) = bare.query(
        "SELECT type, default_expression, comment FROM system.columns "
        "WHERE database = currentDatabase() AND table = 'emissions_15m' "
        "AND name = 'utc_offset_minutes'"
    ).result_rows
    assert column[:2] == ("Int16", "0") and column[2].startswith("offset of the account")
    # data kept: A = 0.5 + 2.0 (revision 2 replaces 9.0) = 2.5 t, B = 1.25 t, offset 0
    rows = bare.query(
        "SELECT account_id, sum(tco2e), count(), max(utc_offset_minutes) "
        "FROM emissions_15m FINAL GROUP BY account_id ORDER BY account_id"
    ).result_rows
    assert rows == [("A", 2.5, 2, 0), ("B", 1.25, 1, 0)]
    # the views (re-created after the migrations) read it: one UTC day (offset 0)
    daily = bare.query("SELECT account_id, day, tco2e FROM emissions_daily ORDER BY account_id")
    assert [(a, str(d), t) for a, d, t in daily.result_rows] == [
        ("A", "2026-03-01", 2.5),
        ("B", "2026-03-01", 1.25),
    ]
    # 0003 gave the old table its deduplication window
    (engine,) = bare.query(
        "SELECT engine_full FROM system.tables WHERE database = currentDatabase() "
        "AND name = 'emissions_15m'"
    ).result_rows[0]
    assert "non_replicated_deduplication_window = 1000" in engine
    known, _views = migrations()
    assert [v for v, *_ in _applied(bare)] == [0] + [m.version for m in known]


def test_a_store_made_by_an_old_version_dedupes_retried_batches_after_migrating(
    store: Store, unique: str
) -> None:
    store.use_database(f"test_{unique}_dedup", apply_ddl=False)
    try:
        store.command(OLD_EMISSIONS)
        store.apply_ddl()
        # the sink's retry: the same batch with the same token twice -> stored once
        for _ in range(2):
            token = {"insert_deduplication_token": "emissions.windows/0/1-1"}
            store.insert("emissions_15m", [_row("A", 8, 0.5)], COLUMNS, settings=token)
        assert store.query("SELECT count() FROM emissions_15m").result_rows == [(1,)]
    finally:
        store.command(f"DROP DATABASE IF EXISTS `test_{unique}_dedup`")
        store.use_database(f"test_{unique}", apply_ddl=False)


def test_applying_twice_does_nothing(store: Store) -> None:
    before = _applied(store)
    table = store.query("SHOW CREATE TABLE emissions_15m").result_rows
    todo = plan(store)
    assert todo.pending == [] and not todo.views_due and todo.statements == []
    assert store.apply_ddl() == 0
    assert _applied(store) == before  # nothing recorded again: same rows, same applied_at
    assert store.query("SHOW CREATE TABLE emissions_15m").result_rows == table
    assert {s.state for s in status(store)} == {"applied"}


def test_a_changed_applied_migration_is_refused_before_anything_runs(
    store: Store, unique: str
) -> None:
    store.use_database(f"test_{unique}_changed", apply_ddl=False)
    try:
        known, _views = migrations()
        store.command(_bookkeeping_sql())
        # 0002 recorded with the checksum of another text: its file has changed since
        store.insert(
            "schema_migrations",
            [[2, "emissions_utc_offset", "0" * 64]],
            ["version", "name", "checksum"],
        )
        with pytest.raises(MigrationError) as err:
            migrate(store)
        message = str(err.value)
        assert "0002 emissions_utc_offset" in message
        assert "sinks/sql/migrations/0002_emissions_utc_offset.sql" in message
        assert (
            f"applied with checksum 000000000000, the file now gives {known[1].checksum[:12]}"
            in message
        )
        assert "must not change" in message and "new sinks/sql/migrations/" in message
        # refused before anything ran: the baseline (pending) created no table
        tables = {r[0] for r in store.query("SHOW TABLES").result_rows}
        assert tables == {"schema_migrations"}
        assert [s.state for s in status(store)][:2] == ["pending", "changed"]
    finally:
        store.command(f"DROP DATABASE IF EXISTS `test_{unique}_changed`")
        store.use_database(f"test_{unique}", apply_ddl=False)


def _bookkeeping_sql() -> str:
    return (SQL / "schema_migrations.sql").read_text()


def test_a_migration_recorded_by_a_newer_version_is_shown_not_refused(store: Store) -> None:
    store.insert("schema_migrations", [[9999, "from_the_future", "f" * 64]],
                 ["version", "name", "checksum"])  # fmt: skip
    assert store.apply_ddl() == 0
    last = status(store)[-1]
    assert (last.version, last.name, last.state) == (9999, "from_the_future", "unknown")


def test_a_dry_run_lists_every_statement_and_changes_nothing(bare: Store) -> None:
    todo = migrate(bare, dry_run=True)
    # every statement of the DDL files and the migration files, baseline first, views last
    expected = len(ddl_statements()) + len(ddl_statements("migrations"))
    assert len(todo.statements) == expected
    assert todo.statements[0][0] == "0001 baseline"
    assert todo.statements[-1][1].startswith("CREATE OR REPLACE VIEW")
    assert bare.query("SHOW TABLES").result_rows == []


def test_migration_files_are_numbered_once_and_idempotent() -> None:
    names = sorted(p.name for p in (SQL / "migrations").glob("*.sql"))
    numbers = [int(n[:4]) for n in names]
    assert numbers == list(range(2, 2 + len(names)))  # 0001 is the baseline (sinks/sql/ddl)
    for _label, statement in ddl_statements("migrations"):
        # each can run again: a migration interrupted half way is simply re-run
        assert re.match(
            r"ALTER TABLE \w+ (ADD COLUMN IF NOT EXISTS|MODIFY SETTING|MODIFY COMMENT)\b",
            re.sub(r"\s+", " ", statement),
        ) or re.match(r"CREATE (TABLE|VIEW|MATERIALIZED VIEW) IF NOT EXISTS", statement), statement


def test_cluster_migrations_run_on_cluster(store: Store) -> None:
    # planned against this database's record (all applied in the default form): the
    # cluster variant's checksums differ, so nothing is applied...
    with pytest.raises(MigrationError, match="0001 baseline"):
        migrate(store, "ddl_cluster", dry_run=True)
    known, views = migrations("ddl_cluster")
    text = "\n".join(s for m in known for s in m.statements)
    assert (
        "ALTER TABLE emissions_15m_local ON CLUSTER '{cluster}'\n"
        "    ADD COLUMN IF NOT EXISTS utc_offset_minutes" in text
    )
    assert "ALTER TABLE emissions_15m ON CLUSTER '{cluster}'\n    ADD COLUMN" in text
    assert all("ON CLUSTER" in s for s in views.statements)


def _cli(server: ChdbHttp, database: str, *args: str, cluster: str = "") -> tuple[int, str]:
    env = {
        "CLICKHOUSE_URL": server.dsn,
        "CARBON_ACCOUNTS_CLICKHOUSE_DATABASE": database,
        "CARBON_ACCOUNTS_CLICKHOUSE_CLUSTER": cluster,
    }
    result = CliRunner().invoke(cli, ["store", *args], env=env)
    return result.exit_code, result.output


def test_store_cli_over_http(chdb_http: ChdbHttp, unique: str) -> None:
    database = f"cli_{unique}"
    n = len(ddl_statements()) + len(ddl_statements("migrations"))
    code, out = _cli(chdb_http, database, "status")
    assert code == 0, out
    assert re.search(r"^0001\s+baseline\s+pending", out, re.M)
    assert out.rstrip().endswith(f"{len(migrations()[0])} pending, 0 changed")
    code, out = _cli(chdb_http, database, "migrate", "--dry-run")
    assert code == 0 and out.rstrip().endswith(f"{n} statement(s) would run, nothing changed")
    code, out = _cli(chdb_http, database, "migrate")
    assert code == 0, out
    assert "applied 0001 baseline" in out and "applied 0002 emissions_utc_offset" in out
    code, out = _cli(chdb_http, database, "migrate")
    assert (code, out) == (0, "up to date: nothing to apply\n")
    code, out = _cli(chdb_http, database, "status")
    assert re.search(r"^0002\s+emissions_utc_offset\s+applied\s+20\d\d-", out, re.M), out
    assert out.rstrip().endswith("0 pending, 0 changed")
    # a cluster's dry run names it in every ALTER; on this database it is refused, the
    # record being of the default variant
    code, out = _cli(chdb_http, f"{database}_c", "migrate", "--dry-run", cluster="prod")
    assert code == 0, out
    assert "ALTER TABLE emissions_15m_local ON CLUSTER 'prod'" in out
    code, out = _cli(chdb_http, database, "migrate", "--dry-run", cluster="prod")
    assert code == 1 and "refusing to migrate" in out
    for db in (database, f"{database}_c"):
        _cli_drop(chdb_http, db)


def _cli_drop(server: ChdbHttp, database: str) -> None:
    import clickhouse_connect

    client = clickhouse_connect.get_client(dsn=server.dsn)
    try:
        client.command(f"DROP DATABASE IF EXISTS `{database}`")
    finally:
        client.close()


#: checksums of the migrations as released: stores out there recorded these. A change
#: here means an edited table in sinks/sql/ddl/ or an edited migration file, which every
#: store that has it would refuse at open; add a new migration instead. (Add a new
#: migration's checksum here once it is released.)
RELEASED = {
    "ddl": {
        1: "d196212794e6c76eb42a55a0fc6538733c299afb9e8e069c5d49e88b3522eb81",
        2: "49b6ca3efc007108e6046732dce18b35201a648952eae6bb6932c35a6a00dc7d",
        3: "946827059fd2fa1003129a01304a1dd19e330c2f083f6da5e41b3422fc3cfc48",
    },
    "ddl_cluster": {
        1: "dd5f75663a4447f0ca511865b27cdcddc9338044ccc77714983994f66316d08b",
        2: "7deb4123f95858b42c919bdac93f2d9edc8fa076f67b21a4c43291379b2db790",
        3: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    },
}


@pytest.mark.parametrize("variant", sorted(RELEASED))
def test_released_migrations_are_unchanged(variant: str) -> None:
    known = {m.version: m for m in migrations(variant)[0]}
    for version, checksum in RELEASED[variant].items():
        assert known[version].checksum == checksum, (
            f"{known[version].label} ({known[version].source}) changed: stores that applied "
            "it refuse to open; restore it and put the change in a new "
            "sinks/sql/migrations/NNNN_name.sql (views may be edited in place)"
        )
