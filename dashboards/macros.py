"""Expand the grafana-clickhouse-datasource macros as the plugin does, for a given range.

Grafana cannot run here, so the tests expand each panel's SQL with this and run it on
the ClickHouse engine. The expansions follow the plugin's backend (pkg/macros):
`$__timeFilter(c)` -> `c >= toDateTime(from) AND c <= toDateTime(to)`, `$__fromTime` ->
`toDateTime(from)`, `$__timeInterval(c)` -> `toStartOfInterval(toDateTime(c), INTERVAL n
second)`, `$__interval_s` -> n, and their `_ms` variants.
"""

from __future__ import annotations

import re
from datetime import date, datetime

__all__ = ["UnknownMacroError", "expand"]


class UnknownMacroError(ValueError):
    """The SQL uses a `$__name` this expander (and so these tests) does not know."""


def _seconds(t: datetime) -> str:
    return f"toDateTime({int(t.timestamp())})"


def _millis(t: datetime) -> str:
    return f"fromUnixTimestamp64Milli({int(t.timestamp() * 1000)})"


def _date(t: datetime | date) -> str:
    return f"toDate('{t.strftime('%Y-%m-%d')}')"


_CALL = re.compile(r"\$__(\w+)\(([^()]*)\)")
_BARE = re.compile(r"\$__(\w+)")


def expand(sql: str, start: datetime, end: datetime, interval_s: int = 60) -> str:
    """`sql` with every plugin macro expanded for [start, end] and a Grafana interval.

    `start` and `end` must be timezone-aware. Raises UnknownMacroError for any other
    `$__` name, so a panel cannot use a macro the tests do not prove.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware")
    interval = max(int(interval_s), 1)

    def call(m: re.Match[str]) -> str:
        name, args = m.group(1), [a.strip() for a in m.group(2).split(",")]
        if name == "timeFilter":
            (c,) = args
            return f"{c} >= {_seconds(start)} AND {c} <= {_seconds(end)}"
        if name == "timeFilter_ms":
            (c,) = args
            return f"{c} >= {_millis(start)} AND {c} <= {_millis(end)}"
        if name == "dateFilter":
            (c,) = args
            return f"{c} >= {_date(start)} AND {c} <= {_date(end)}"
        if name in ("dateTimeFilter", "dt"):
            d, c = args
            return (
                f"({d} >= {_date(start)} AND {d} <= {_date(end)}) AND "
                f"({c} >= {_seconds(start)} AND {c} <= {_seconds(end)})"
            )
        if name == "timeInterval":
            (c,) = args
            return f"toStartOfInterval(toDateTime({c}), INTERVAL {interval} second)"
        if name == "timeInterval_ms":
            (c,) = args
            return (
                f"toStartOfInterval(toDateTime64({c}, 3), INTERVAL {interval * 1000} millisecond)"
            )
        raise UnknownMacroError(f"unknown macro $__{name}(...)")

    def bare(m: re.Match[str]) -> str:
        values = {
            "fromTime": _seconds(start),
            "toTime": _seconds(end),
            "fromTime_ms": _millis(start),
            "toTime_ms": _millis(end),
            "interval_s": str(interval),
        }
        if m.group(1) not in values:
            raise UnknownMacroError(f"unknown macro $__{m.group(1)}")
        return values[m.group(1)]

    return _BARE.sub(bare, _CALL.sub(call, sql))
