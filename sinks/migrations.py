"""Versioned schema migrations: what a database has had applied, and what it still needs.

A database records what it has had in `schema_migrations` (version, name, checksum,
applied_at). `migrate` brings it up to date, in this order:

1. version 1, `baseline`: the tables (and seed) of `sinks/sql/ddl/` — the schema as it
   was when migrations began. All `CREATE TABLE IF NOT EXISTS`, so a store made by an
   older version keeps its tables and data; later migrations add what it lacks.
2. versions 2, 3, ...: `sinks/sql/migrations/NNNN_name.sql`, in order, each once. Each
   statement is idempotent where ClickHouse allows (`ADD COLUMN IF NOT EXISTS`,
   `MODIFY SETTING`), so a migration interrupted half way can simply run again.
3. the views of `sinks/sql/ddl/` (all `CREATE OR REPLACE VIEW`): re-created after any
   migration ran, or when their text changed (recorded as version 0, `views`). A view
   reads columns the migrations add: created before them it fails, or (with a column
   list) is created but fails at every query.

The checksum is the sha256 of a migration's statements with comments and surrounding
blank space left out: a changed comment is no change, a changed statement is. An applied
migration whose file has changed is refused before anything runs (`MigrationError`):
the database would no longer be what the files say. Change the schema by adding a file.

The cluster variant (`variant="ddl_cluster"`) reads the generated `sinks/sql/ddl_cluster/`
and `sinks/sql/migrations_cluster/` (`python -m sinks.cluster`): ALTERs run ON CLUSTER on
the shards' `_local` tables and on the Distributed table over them, and `schema_migrations`
is a replicated table copied whole to every node.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from importlib.resources import files

from clickhouse_connect.driver.exceptions import ClickHouseError

from sinks.cluster import cluster_statement
from sinks.store import Store, StoreError, _split_sql

__all__ = [
    "SCHEMA_MIGRATIONS",
    "Migration",
    "MigrationError",
    "MigrationPlan",
    "MigrationState",
    "migrate",
    "migrations",
    "plan",
    "status",
]

#: the bookkeeping table (sinks/sql/schema_migrations.sql); not itself a migration
SCHEMA_MIGRATIONS = _split_sql(files("sinks").joinpath("sql", "schema_migrations.sql").read_text())[
    0
]

_FOLDERS = {"ddl": "migrations", "ddl_cluster": "migrations_cluster"}
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_VIEWS_VERSION, _BASELINE_VERSION = 0, 1


class MigrationError(StoreError):
    """The migrations cannot be applied: a changed applied migration, a bad file, a failure."""


def _checksum(statements: list[str] | tuple[str, ...]) -> str:
    return hashlib.sha256("\n;\n".join(statements).encode()).hexdigest()


@dataclass(frozen=True)
class Migration:
    """One versioned migration: its statements, in order, and their checksum."""

    version: int
    name: str
    source: str
    statements: tuple[str, ...]
    checksum: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "checksum", _checksum(self.statements))

    @property
    def label(self) -> str:
        """`0002 emissions_utc_offset`, as the CLI and messages show it."""
        return f"{self.version:04d} {self.name}"


@dataclass(frozen=True)
class MigrationState:
    """A migration as this database has it: applied (when, with which checksum) or not."""

    version: int
    name: str
    migration: Migration | None
    applied_at: datetime | None
    applied_checksum: str | None

    @property
    def state(self) -> str:
        """`applied`, `pending`, `changed` (file differs from what was applied) or
        `unknown` (applied by a newer version of Carbon Accounts, no file here)."""
        if self.migration is None:
            return "unknown"
        if self.applied_checksum is None:
            return "pending"
        return "applied" if self.applied_checksum == self.migration.checksum else "changed"


@dataclass
class MigrationPlan:
    """What `migrate` does (or, after it, did) on one database."""

    pending: list[Migration]
    views: Migration
    views_due: bool
    states: list[MigrationState]

    @property
    def statements(self) -> list[tuple[str, str]]:
        """`(label, statement)` of every statement to run, in order."""
        out = [(m.label, s) for m in self.pending for s in m.statements]
        if self.views_due:
            out += [(self.views.label, s) for s in self.views.statements]
        return out


def _sql_files(folder: str) -> list[tuple[str, str]]:
    base = files("sinks").joinpath("sql", folder)
    return sorted((e.name, e.read_text()) for e in base.iterdir() if e.name.endswith(".sql"))


def migrations(variant: str = "ddl") -> tuple[list[Migration], Migration]:
    """The versioned migrations of `variant` (baseline first) and the repeatable views.

    Raises MigrationError for a badly named or duplicated migration file.
    """
    if variant not in _FOLDERS:
        raise ValueError(f"unknown variant {variant!r}: one of {sorted(_FOLDERS)}")
    tables, views = [], []
    for _name, text in _sql_files(variant):
        for stmt in _split_sql(text):
            (views if stmt.startswith("CREATE OR REPLACE VIEW") else tables).append(stmt)
    out = [Migration(_BASELINE_VERSION, "baseline", f"sinks/sql/{variant}/", tuple(tables))]
    seen: dict[int, str] = {}
    folder = _FOLDERS[variant]
    for name, text in _sql_files(folder):
        m = _FILE.match(name)
        if m is None:
            raise MigrationError(
                f"sinks/sql/{folder}/{name}: a migration is named NNNN_lower_snake_name.sql"
            )
        version = int(m.group(1))
        if version <= _BASELINE_VERSION:
            raise MigrationError(f"sinks/sql/{folder}/{name}: versions 0 and 1 are reserved")
        if version in seen:
            raise MigrationError(
                f"sinks/sql/{folder}/{name}: version {version} is also {seen[version]}"
            )
        seen[version] = name
        out.append(
            Migration(version, m.group(2), f"sinks/sql/{folder}/{name}", tuple(_split_sql(text)))
        )
    out.sort(key=lambda mig: mig.version)
    return out, Migration(_VIEWS_VERSION, "views", f"sinks/sql/{variant}/", tuple(views))


def _bookkeeping(variant: str) -> str:
    return (
        cluster_statement(SCHEMA_MIGRATIONS, reference=True)
        if variant != "ddl"
        else (SCHEMA_MIGRATIONS)
    )


def _applied(store: Store) -> dict[int, tuple[str, str, datetime]] | None:
    """version -> (name, checksum, applied_at); None when there is no schema_migrations."""
    exists = store.query(
        "SELECT count() FROM system.tables WHERE database = currentDatabase() "
        "AND name = 'schema_migrations'"
    ).result_rows[0][0]
    if not exists:
        return None
    rows = store.query(
        "SELECT version, name, checksum, applied_at FROM schema_migrations FINAL ORDER BY version"
    ).result_rows
    return {int(v): (n, c, t) for v, n, c, t in rows}


def status(store: Store, variant: str = "ddl") -> list[MigrationState]:
    """Every migration known here or recorded in the database, in version order."""
    return plan(store, variant).states


def plan(store: Store, variant: str = "ddl") -> MigrationPlan:
    """What `migrate` would do now; runs nothing."""
    known, views = migrations(variant)
    applied = _applied(store) or {}
    by_version = {m.version: m for m in known}
    states = []
    for version in sorted(set(by_version) | (set(applied) - {_VIEWS_VERSION})):
        mig = by_version.get(version)
        name, checksum, at = applied.get(version, (mig.name if mig else "?", None, None))
        states.append(MigrationState(version, name, mig, at, checksum))
    pending = [s.migration for s in states if s.state == "pending" and s.migration]
    recorded_views = applied.get(_VIEWS_VERSION, ("", None, None))[1]
    views_due = bool(pending) or recorded_views != views.checksum
    return MigrationPlan(pending, views, views_due, states)


def _check(states: list[MigrationState], variant: str) -> None:
    changed = [s for s in states if s.state == "changed" and s.migration]
    if changed:
        lines = [
            f"  {s.migration.label} ({s.migration.source}): applied with checksum "
            f"{(s.applied_checksum or '')[:12]}, the file now gives {s.migration.checksum[:12]}"
            for s in changed
            if s.migration
        ]
        raise MigrationError(
            "refusing to migrate: applied migration(s) changed since they were applied\n"
            + "\n".join(lines)
            + "\nan applied migration must not change: restore it (git) and put the change "
            "in a new sinks/sql/migrations/NNNN_name.sql"
            + (" (then `python -m sinks.cluster`)" if variant != "ddl" else "")
        )


def migrate(
    store: Store, variant: str = "ddl", *, dry_run: bool = False, cluster: str | None = None
) -> MigrationPlan:
    """Apply the pending migrations, in order, each recorded once it has run; returns the plan.

    `dry_run`: nothing is run or created. `cluster` names the cluster in place of the
    `{cluster}` macro (cluster variant). Raises MigrationError when an applied migration
    changed (before anything runs) or a statement fails (that migration is not recorded;
    its statements are idempotent, so it runs again whole next time).
    """
    todo = plan(store, variant)
    _check(todo.states, variant)
    if dry_run:
        return todo

    def run(label: str, stmt: str) -> None:
        if cluster:
            stmt = stmt.replace("'{cluster}'", f"'{cluster}'")
        try:
            store.command(stmt)
        except ClickHouseError as exc:
            hint = (
                "\n(tables made from sinks/sql/ddl_cluster? set clickhouse.cluster to migrate "
                "them ON CLUSTER)"
                if variant == "ddl" and not store.embedded
                else ""
            )
            raise MigrationError(f"migration {label} failed: {exc}{hint}") from exc

    run("schema_migrations", _bookkeeping(variant))
    for mig in [*todo.pending, *([todo.views] if todo.views_due else [])]:
        for stmt in mig.statements:
            run(mig.label, stmt)
        store.insert(
            "schema_migrations",
            [[mig.version, mig.name, mig.checksum]],
            ["version", "name", "checksum"],
        )
    return todo
