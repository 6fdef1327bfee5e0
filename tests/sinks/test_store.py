"""The ClickHouse layer on chdb: DDL applies twice, rows round-trip, one owner per path."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from sinks.store import Store, ddl_statements


def test_ddl_applies_once(store: Store, unique: str) -> None:
    # a database of its own without the DDL: the first apply runs every statement of the
    # DDL files (the baseline and the views) and of the migrations; the second, none
    store.use_database(f"test_{unique}_once", apply_ddl=False)
    try:
        n = len(ddl_statements()) + len(ddl_statements("migrations"))
        assert n >= 1
        assert store.apply_ddl() == n
        assert store.apply_ddl() == 0
        tables = {row[0] for row in store.query("SHOW TABLES").result_rows}
        assert {"emissions_15m", "schema_migrations", "loan_terms"} <= tables
    finally:
        store.command(f"DROP DATABASE IF EXISTS `test_{unique}_once`")
        store.use_database(f"test_{unique}", apply_ddl=False)


def test_rows_round_trip_and_revisions_replace(store: Store) -> None:
    cols = [
        "account_id",
        "energy_type",
        "window_start",
        "window_end",
        "consumption",
        "unit",
        "tco2e",
        "factor_id",
        "factor_version",
        "factor_value",
        "factor_unit",
        "uncertain",
        "revision",
    ]
    start, end = datetime(2026, 3, 1, 0, 0, tzinfo=UTC), datetime(2026, 3, 1, 0, 15, tzinfo=UTC)
    row = [
        "A",
        "electricity",
        start,
        end,
        100.0,
        "kWh",
        0.055,
        "grid",
        "2023",
        0.00055,
        "tCO2e/kWh",
        False,
        1,
    ]
    store.insert("emissions_15m", [row, [*row[:4], 120.0, *row[5:12], 2]], column_names=cols)
    got = store.query(
        "SELECT consumption, revision, window_start FROM emissions_15m FINAL"
    ).result_rows
    assert len(got) == 1
    assert got[0][:2] == (120.0, 2)
    assert got[0][2].replace(tzinfo=UTC) == start


def test_second_process_gets_a_clear_in_use_error(chdb_store: Store, tmp_path: Path) -> None:
    path = chdb_store.dsn.removeprefix("chdb://")
    code = (
        "from sinks.store import open_store, StoreInUseError\n"
        f"try:\n    open_store(dsn='chdb://{path}')\n"
        "except StoreInUseError as e:\n    print('IN USE:', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "IN USE:" in out.stdout, out.stderr[-2000:]
    assert "in use by another process" in out.stdout


def test_sql_split_respects_quotes_and_comments() -> None:
    from sinks.store import _split_sql

    text = "SELECT 'a;b' -- c;d\nFROM x; SELECT 'it''s';\n-- only a comment;\nSELECT 1"
    assert _split_sql(text) == ["SELECT 'a;b' \nFROM x", "SELECT 'it''s'", "SELECT 1"]
