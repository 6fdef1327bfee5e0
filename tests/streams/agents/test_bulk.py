"""`_bulk`'s copy of Faust's drain loop against the Faust installed: the consumer parts
it uses are there, and it is installed once on the app's consumer when the app boots.

What it delivers runs against the real broker in tests/e2e (test_accounting_live.py:
live stream against replay, restart; test_scale_out.py: rebalances, a killed worker).
"""

from __future__ import annotations

import inspect
from typing import Any

import faust

from streams.agents._bulk import deliver_in_bulk

# what the copied loop reads from Faust's consumer (faust/transport/consumer.py)
_USED = [
    "callback",
    "getmany",
    "_stopped",
    "_read_offset",
    "diag",
    "_commit_every",
    "app",
    "track_message",
    "sleep",
    "should_stop",
    "_add_gap",
    "_n_acked",
    "commit",
    "wait_first",
    "suspend_flow",
    "flow_active",
    "consumer_stopped_errors",
    "transport",
    "log",
]


def _app(name: str) -> faust.App:
    return faust.App(name, broker="kafka://127.0.0.1:1", store="memory://", web_enabled=False)


def test_the_consumer_has_what_the_copied_loop_uses() -> None:
    consumer = _app("bulk-parts").consumer
    missing = [name for name in _USED if not hasattr(consumer, name)]
    assert missing == []
    # the loop it replaces: same signature (self, fetcher), still a coroutine
    original = type(consumer)._drain_messages
    assert inspect.iscoroutinefunction(original)
    assert list(inspect.signature(original).parameters) == ["self", "fetcher"]


def test_installed_once_on_the_app_consumer_at_boot() -> None:
    app = _app("bulk-boot")
    taken: list[Any] = []
    deliver_in_bulk(app, "meter.readings", taken.append, lambda: False, _room)
    deliver_in_bulk(app, "meter.readings", taken.append, lambda: False, _room)
    consumer = app.consumer
    before = consumer._drain_messages
    app.boot_strategy.server()  # what the worker's boot asks for: installs it
    after = consumer._drain_messages
    assert after != before and after.__func__.__name__ == "_drain_messages"
    assert consumer._drain_messages_in_bulk is True
    app.boot_strategy.server()  # asked again (a restart of the services): not re-wrapped
    assert consumer._drain_messages == after


async def _room() -> None:
    return None
