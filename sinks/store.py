"""The one ClickHouse layer: clickhouse-connect's Client, embedded (chdb) or a server.

Only the factory differs: `chdb:///abs/path` runs the ClickHouse engine in this
process on a data directory (default `<data_dir>/clickhouse`); `CLICKHOUSE_URL`
points at a server. The SQL is the same for both.

chdb releases the GIL, so async callers go through `asyncio.to_thread` (`Store.run`).
Only one process can own an embedded data directory: a second one gets
`StoreInUseError` instead of chdb's opaque "Code: 36 ... EmbeddedServer".
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any, ParamSpec, Self, TypeVar

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from schemas.settings import Settings

__all__ = ["Store", "StoreError", "StoreInUseError", "ddl_statements", "open_store"]

P = ParamSpec("P")
R = TypeVar("R")


class StoreError(RuntimeError):
    """ClickHouse could not be opened or a statement failed."""


class StoreInUseError(StoreError):
    """The embedded store's data directory is owned by another process."""


def _split_sql(text: str) -> list[str]:
    """Statements of a SQL file: split on `;` outside quotes, `--` comments dropped."""
    statements, current, quote, i = [], [], "", 0
    while i < len(text):
        ch = text[i]
        if quote:
            current.append(ch)
            if ch == "\\" and i + 1 < len(text):
                current.append(text[i + 1])
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'`\"":
            quote = ch
            current.append(ch)
        elif text.startswith("--", i):
            i = text.find("\n", i)
            if i < 0:
                break
            continue
        elif ch == ";":
            statements.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    statements.append("".join(current))
    return [s.strip() for s in statements if s.strip()]


def ddl_statements(variant: str = "ddl") -> list[tuple[str, str]]:
    """`(file name, statement)` of every DDL file in `sinks/sql/<variant>/`, in name order."""
    folder = files("sinks").joinpath("sql", variant)
    out = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".sql"):
            out.extend((entry.name, stmt) for stmt in _split_sql(entry.read_text()))
    return out


class Store:
    """A clickhouse-connect Client with the project's DDL and async helpers."""

    def __init__(self, client: Client, dsn: str, embedded: bool) -> None:
        self.client = client
        self.dsn = dsn
        self.embedded = embedded
        # chdb's session is not safe for concurrent statements from several threads
        self._lock = threading.Lock()

    def command(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        """Run a statement that returns no rows (DDL, INSERT ... SELECT)."""
        with self._lock:
            return self.client.command(sql, parameters=parameters)

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        """Run a query; returns clickhouse-connect's QueryResult."""
        with self._lock:
            return self.client.query(sql, parameters=parameters)

    def insert(
        self,
        table: str,
        rows: list[list[Any]] | list[tuple[Any, ...]],
        column_names: list[str],
        settings: dict[str, Any] | None = None,
    ) -> Any:
        """Insert rows (sequences in `column_names` order)."""
        with self._lock:
            return self.client.insert(table, rows, column_names=column_names, settings=settings)

    def insert_arrow(
        self, table: str, arrow_table: Any, settings: dict[str, Any] | None = None
    ) -> Any:
        """Insert a pyarrow Table."""
        with self._lock:
            return self.client.insert_arrow(table, arrow_table, settings=settings)

    async def run(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Call a blocking Store method on a thread (chdb releases the GIL)."""
        return await asyncio.to_thread(fn, *args, **kwargs)

    def apply_ddl(self, variant: str = "ddl", cluster: str | None = None) -> int:
        """Bring the schema up to date with the versioned migrations (sinks/migrations.py).

        Runs only what this database has not had yet; returns the statements run.
        Raises StoreError (MigrationError) when an applied migration has changed.
        """
        from sinks.migrations import migrate  # it builds on this module

        return len(migrate(self, variant, cluster=cluster).statements)

    def use_database(self, database: str, apply_ddl: bool = True) -> None:
        """Switch to `database` (created if missing) and apply the DDL there."""
        self.command(f"CREATE DATABASE IF NOT EXISTS `{database}`")
        if self.embedded:
            self.command(f"USE `{database}`")
        self.client.database = database
        if apply_ddl:
            self.apply_ddl()

    def close(self) -> None:
        """Close the client (releases the embedded data directory)."""
        global _owned_path
        self.client.close()
        if self.embedded and _owned_path == self.dsn:
            _owned_path = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# chdb runs one engine per process: the embedded path this process owns, if any
_owned_path: str | None = None


def _connect(dsn: str, database: str) -> Client:
    if dsn.startswith("chdb://") and _owned_path not in (None, dsn):
        raise StoreInUseError(
            f"this process already owns the embedded store {_owned_path}; close it before "
            f"opening {dsn} (chdb runs one engine per process)"
        )
    try:
        return clickhouse_connect.get_client(dsn=dsn, database=database)
    except Exception as exc:
        if "EmbeddedServer" in str(exc) or "Code: 36" in str(exc):
            path = dsn.removeprefix("chdb://")
            raise StoreInUseError(
                f"the ClickHouse store at {path} is in use by another process "
                "(only one process can own an embedded store; stop it, or use its HTTP "
                "query endpoint, or set CLICKHOUSE_URL to a server)"
            ) from exc
        raise StoreError(f"cannot open ClickHouse at {dsn}: {exc}") from exc


def open_store(
    settings: Settings | None = None, *, dsn: str | None = None, apply_ddl: bool = True
) -> Store:
    """Open ClickHouse: `dsn` if given, else `CLICKHOUSE_URL`, else chdb on `<data_dir>/clickhouse`.

    Creates the database and applies the pending schema migrations unless
    `apply_ddl=False`; with `clickhouse.cluster` set, the cluster variant ON CLUSTER.
    """
    settings = settings or Settings()
    database = settings.clickhouse.database
    cluster = settings.clickhouse.cluster
    if dsn is None:
        if settings.clickhouse.url:
            dsn = settings.clickhouse.url
        else:
            path = settings.path("clickhouse")
            path.mkdir(parents=True, exist_ok=True)
            dsn = f"chdb://{Path(path).resolve()}"
    global _owned_path
    embedded = dsn.startswith("chdb://")
    bootstrap = _connect(dsn, "default")
    if embedded:
        _owned_path = dsn
    try:
        bootstrap.command(f"CREATE DATABASE IF NOT EXISTS `{database}`")
    finally:
        if not embedded:
            bootstrap.close()
    if embedded:
        # chdb: one engine per process; switch the session's database instead of reopening
        bootstrap.command(f"USE `{database}`")
        bootstrap.database = database
        client = bootstrap
    else:
        client = _connect(dsn, database)
    store = Store(client, dsn, embedded)
    if apply_ddl:
        if cluster and embedded:
            store.close()
            raise StoreError("clickhouse.cluster needs a ClickHouse server (CLICKHOUSE_URL)")
        try:
            store.apply_ddl("ddl_cluster" if cluster else "ddl", cluster or None)
        except StoreError:
            store.close()
            raise
    return store
