"""The analysts' query catalogue: named, parameterised SQL files in `sinks/sql/queries/`.

A file `<name>.sql` starts with `--` comment lines: a description, then

- `-- @param NAME [= DEFAULT]: doc` for each parameter (the type is the one of its
  `{NAME:Type}` placeholders; DEFAULT `now` is the current instant, `$timezone` the
  configured calendar zone, an empty default is the empty string);
- `-- @choices NAME: a, b, c` to restrict a parameter to a set;
- `-- @section NAME` before each statement (a query may have several sections).

Values are checked and converted here (a clear `CatalogueError` otherwise) and bound
by ClickHouse itself (`{name:Type}` server-side parameters): a value never changes
the SQL text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from importlib.resources import files
from typing import Any

from sinks.store import Store, _split_sql

__all__ = [
    "CatalogueError",
    "Param",
    "Query",
    "SectionResult",
    "bind",
    "catalogue",
    "get_query",
    "run_query",
]

_PLACEHOLDER = re.compile(r"\{(\w+):([^{}]+?)\}")
_PARAM = re.compile(r"^--\s*@param\s+(\w+)\s*(?:=\s*([^:]*?))?\s*:\s*(.*)$")
_CHOICES = re.compile(r"^--\s*@choices\s+(\w+)\s*:\s*(.*)$")
_SECTION = re.compile(r"^--\s*@section\s+(\w+)\s*$", re.M)


class CatalogueError(ValueError):
    """An unknown query, or a missing, unknown or ill-typed parameter."""


@dataclass(frozen=True)
class Param:
    """A query parameter: its ClickHouse type, default and doc."""

    name: str
    type: str
    default: str | None
    doc: str
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Query:
    """A catalogue query: description, parameters and named SQL sections."""

    name: str
    description: str
    params: dict[str, Param]
    sections: tuple[tuple[str, str], ...]


@dataclass
class SectionResult:
    """The rows of one section of a query."""

    section: str
    columns: list[str]
    rows: list[tuple[Any, ...]] = field(default_factory=list)

    def records(self) -> list[dict[str, Any]]:
        """Rows as dicts, column name -> value."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def _parse(name: str, text: str) -> Query:
    description: list[str] = []
    docs: dict[str, tuple[str | None, str]] = {}
    choices: dict[str, tuple[str, ...]] = {}
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        if m := _PARAM.match(line):
            docs[m.group(1)] = (m.group(2), m.group(3).strip())
        elif m := _CHOICES.match(line):
            choices[m.group(1)] = tuple(c.strip() for c in m.group(2).split(","))
        elif not _SECTION.match(line):
            description.append(line.removeprefix("--").strip())
    parts = _SECTION.split(text)
    sections = []
    for i in range(1, len(parts), 2):
        statements = _split_sql(parts[i + 1])
        if len(statements) != 1:
            raise ValueError(f"{name}.sql section {parts[i]}: expected one statement")
        sections.append((parts[i], statements[0]))
    if not sections:
        raise ValueError(f"{name}.sql has no -- @section")
    types: dict[str, str] = {}
    for pname, ptype in _PLACEHOLDER.findall(text):
        if types.setdefault(pname, ptype.strip()) != ptype.strip():
            raise ValueError(f"{name}.sql: parameter {pname} has two types")
    if set(types) != set(docs):
        raise ValueError(f"{name}.sql: @param lines {sorted(docs)} != placeholders {sorted(types)}")
    params = {
        p: Param(p, types[p], docs[p][0], docs[p][1], choices.get(p, ())) for p in sorted(types)
    }
    return Query(name, " ".join(description), params, tuple(sections))


_CACHE: dict[str, Query] = {}


def catalogue() -> dict[str, Query]:
    """Every query of `sinks/sql/queries/`, by name."""
    if not _CACHE:
        folder = files("sinks").joinpath("sql", "queries")
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            if entry.name.endswith(".sql"):
                name = entry.name.removesuffix(".sql")
                _CACHE[name] = _parse(name, entry.read_text())
    return dict(_CACHE)


def _convert(param: Param, raw: str) -> Any:
    t = param.type
    base = re.sub(r"^(LowCardinality|Nullable)\((.*)\)$", r"\2", t)
    try:
        if base == "String":
            value: Any = raw
        elif re.fullmatch(r"U?Int(8|16|32|64)", base):
            if not re.fullmatch(r"[+-]?\d+", raw.strip()):
                raise ValueError
            value = int(raw)
            bits = int(re.sub(r"\D", "", base))
            lo, hi = (
                (0, 2**bits - 1)
                if base.startswith("U")
                else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
            )
            if not lo <= value <= hi:
                raise ValueError
        elif base.startswith("Float"):
            value = float(raw)
            if not math.isfinite(value):
                raise ValueError
        elif base == "Date":
            value = date.fromisoformat(raw.strip()).isoformat()
        elif base.startswith("DateTime"):
            dt = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
            if dt.tzinfo is None:
                raise CatalogueError(
                    f"parameter {param.name}: {raw!r} has no UTC offset "
                    "(write e.g. 2026-03-01T00:00:00+08:00 or ...Z)"
                )
            value = dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        else:  # a type we do not check: refuse rather than pass it unchecked
            raise CatalogueError(f"parameter {param.name}: unsupported type {t}")
    except CatalogueError:
        raise
    except (ValueError, OverflowError):
        raise CatalogueError(f"parameter {param.name}: {raw!r} is not a valid {t}") from None
    if param.choices and raw not in param.choices:
        raise CatalogueError(
            f"parameter {param.name}: {raw!r} is not one of {', '.join(param.choices)}"
        )
    return value


def bind(
    query: Query, raw: Mapping[str, str], *, timezone: str = "Asia/Shanghai"
) -> dict[str, Any]:
    """Check and convert the `--param` values of `query`, defaults filled in."""
    unknown = sorted(set(raw) - set(query.params))
    if unknown:
        known = ", ".join(query.params) or "none"
        raise CatalogueError(
            f"{query.name}: unknown parameter(s) {', '.join(unknown)} (parameters: {known})"
        )
    values: dict[str, Any] = {}
    for name, param in query.params.items():
        if name in raw:
            text = raw[name]
        elif param.default is None:
            raise CatalogueError(
                f"{query.name}: missing parameter {name} ({param.type}): {param.doc}"
            )
        elif param.default == "now":
            text = datetime.now(UTC).isoformat()
        elif param.default == "$timezone":
            text = timezone
        else:
            text = param.default
        values[name] = _convert(param, text)
    return values


def get_query(name: str) -> Query:
    """The catalogue query `name`, or CatalogueError naming the known ones."""
    queries = catalogue()
    if name not in queries:
        raise CatalogueError(f"unknown query {name!r}; known: {', '.join(queries)}")
    return queries[name]


def run_query(
    store: Store, name: str, raw: Mapping[str, str], *, timezone: str = "Asia/Shanghai"
) -> list[SectionResult]:
    """Run catalogue query `name` with `--param` values `raw`; one result per section."""
    query = get_query(name)
    params = bind(query, raw, timezone=timezone)
    out = []
    for section, sql in query.sections:
        used = {k: v for k, v in params.items() if "{" + k + ":" in sql}
        result = store.query(sql, parameters=used)
        out.append(SectionResult(section, list(result.column_names), list(result.result_rows)))
    return out
