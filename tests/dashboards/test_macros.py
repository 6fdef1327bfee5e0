"""The ClickHouse plugin's macros, expanded as its backend does."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dashboards.macros import UnknownMacroError, expand
from sinks.store import Store

START = datetime(2026, 3, 1, tzinfo=UTC)  # 1772323200 = 20513 days x 86400 s
END = datetime(2026, 3, 1, 1, tzinfo=UTC)


def test_expansions_follow_the_plugin() -> None:
    assert expand("$__timeFilter(ts)", START, END) == (
        "ts >= toDateTime(1772323200) AND ts <= toDateTime(1772326800)"
    )
    assert expand("$__fromTime_ms $__toTime $__interval_s", START, END, 900) == (
        "fromUnixTimestamp64Milli(1772323200000) toDateTime(1772326800) 900"
    )
    assert expand("$__timeInterval(ts)", START, END, 0) == (
        "toStartOfInterval(toDateTime(ts), INTERVAL 1 second)"  # the plugin's floor is 1 s
    )
    assert expand("$__dateFilter(d)", START, END) == (
        "d >= toDate('2026-03-01') AND d <= toDate('2026-03-01')"
    )


def test_unknown_macros_and_naive_times_are_refused() -> None:
    with pytest.raises(UnknownMacroError):
        expand("$__conditionalAll(x, $v)", START, END)
    with pytest.raises(UnknownMacroError):
        expand("$__timezone", START, END)
    with pytest.raises(ValueError):
        expand("$__fromTime", START.replace(tzinfo=None), END)


def test_expanded_filter_selects_the_range_on_clickhouse(store: Store) -> None:
    # 00:00 and 01:00 are inside [START, END] (the plugin's bounds are inclusive); 01:00:01 not
    sql = expand(
        "SELECT count() FROM (SELECT arrayJoin([toDateTime64('2026-03-01 00:00:00', 3, 'UTC'), "
        "toDateTime64('2026-03-01 01:00:00', 3, 'UTC'), "
        "toDateTime64('2026-03-01 01:00:01', 3, 'UTC')]) AS ts) WHERE $__timeFilter(ts)",
        START,
        END,
    )
    assert store.query(sql).result_rows == [(2,)]
