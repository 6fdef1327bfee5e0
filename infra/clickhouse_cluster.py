"""The ClickHouse cluster variant of the DDL: Replicated tables, sharded behind Distributed.

The single-server DDL (sinks/sql/ddl/*.sql) stays the one source; this rewrites each
statement for a cluster (`carbon-accounts infra cluster-ddl`):

- a table with an `account_id` column (emissions, intervals, labels, points, rollups)
  becomes `<name>_local`, a `Replicated*MergeTree` on every shard, plus `<name>`, a
  `Distributed` table sharded by `cityHash64(account_id)`. Every row of an account lives
  on one shard, so `FINAL` and per-account aggregates are exact per shard, and the SQL of
  the queries and dashboards does not change;
- reference tables (the registry, denominators, benchmarks, factors, and any table
  without `account_id`) are small: one `Replicated*MergeTree` with a full copy on every
  node (one Keeper path for all shards), so joins with them stay local;
- a materialized view reads and writes the `_local` tables of its shard;
- everything runs `ON CLUSTER`, with the `{shard}` and `{replica}` macros of each server.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["REFERENCE_TABLES", "cluster_ddl"]

#: tables copied whole to every node instead of sharded
REFERENCE_TABLES = frozenset({"accounts", "denominators", "benchmarks", "emission_factors"})

_CREATE_TABLE = re.compile(
    r"^CREATE\s+TABLE\s+(?P<ine>IF\s+NOT\s+EXISTS\s+)?(?P<name>[\w.`]+)", re.IGNORECASE
)
_CREATE_VIEW = re.compile(
    r"^CREATE\s+(?P<mat>MATERIALIZED\s+)?VIEW\s+(?P<ine>IF\s+NOT\s+EXISTS\s+)?(?P<name>[\w.`]+)",
    re.IGNORECASE,
)
_ACCOUNT_COLUMN = re.compile(r"(?:^|[(,])\s*`?account_id`?\s+[A-Z]", re.MULTILINE)
_ENGINE = re.compile(r"ENGINE\s*=\s*(?P<engine>\w*MergeTree)(?:\s*\((?P<args>[^()]*)\))?")


def _replicated(statement: str, path: str) -> str:
    def repl(m: re.Match[str]) -> str:
        args = [f"'{path}'", "'{replica}'"]
        if m.group("args") and m.group("args").strip():
            args.append(m.group("args").strip())
        return f"ENGINE = Replicated{m.group('engine')}({', '.join(args)})"

    out, count = _ENGINE.subn(repl, statement, count=1)
    if not count:
        raise ValueError(f"no MergeTree engine to replicate in: {statement[:80]}...")
    return out


def _rename(statement: str, tables: Iterable[str]) -> str:
    # references to sharded tables inside a view point at this shard's _local table
    for table in sorted(tables, key=len, reverse=True):
        statement = re.sub(rf"(?<![\w.`]){re.escape(table)}(?![\w`])", f"{table}_local", statement)
    return statement


def cluster_ddl(
    statements: Iterable[str],
    cluster: str = "carbon_accounts",
    reference_tables: Iterable[str] = REFERENCE_TABLES,
) -> list[str]:
    """The cluster variant of single-server DDL `statements`, in order."""
    reference = set(reference_tables)
    on = f"ON CLUSTER '{cluster}'"
    sharded: list[str] = []
    out: list[str] = []
    for statement in statements:
        table = _CREATE_TABLE.match(statement)
        view = _CREATE_VIEW.match(statement)
        if table:
            name, ine = table.group("name"), table.group("ine") or ""
            rest = statement[table.end() :]
            if name in reference or not _ACCOUNT_COLUMN.search(rest):
                head = f"CREATE TABLE {ine}{name} {on}"
                out.append(_replicated(head + rest, "/clickhouse/tables/all/{database}/{table}"))
                continue
            sharded.append(name)
            head = f"CREATE TABLE {ine}{name}_local {on}"
            out.append(_replicated(head + rest, "/clickhouse/tables/{shard}/{database}/{table}"))
            out.append(
                f"CREATE TABLE {ine}{name} {on} AS {name}_local\n"
                f"ENGINE = Distributed('{cluster}', currentDatabase(), {name}_local, "
                "cityHash64(account_id))"
            )
        elif view:
            name, ine = view.group("name"), view.group("ine") or ""
            kind = "MATERIALIZED VIEW" if view.group("mat") else "VIEW"
            rest = statement[view.end() :]
            if view.group("mat"):
                rest = _rename(rest, sharded)  # triggered by inserts into a shard's table
            out.append(f"CREATE {kind} {ine}{name} {on}{rest}")
        else:
            out.append(statement)
    return out
