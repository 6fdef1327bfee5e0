"""A pause after an empty fetch, for brokers that answer fetches at once.

Kafka holds a fetch up to `fetch_max_wait_ms` when there is no data; the embedded
broker (noida-db) answers at once, so an idle aiokafka consumer sends fetches in a
loop: 0.32 CPU-seconds per second for one idle consumer, 0.51 for an idle worker
(measured on this project's 2-core machine). With `install()` an empty fetch keeps its
node busy for `seconds` more before the next one, so idle consumers poll about 1/seconds
times a second. A fetch that brings data is not delayed; against Kafka, which already
waited, the pause only adds to an idle poll.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiokafka.consumer.fetcher import Fetcher

__all__ = ["install", "installed", "uninstall"]

_ORIGINAL = Fetcher._proc_fetch_request
_STATE = {"seconds": 0.0}


async def _proc_fetch_request(self: Any, *args: Any, **kwargs: Any) -> bool:
    has_data = await _ORIGINAL(self, *args, **kwargs)
    if not has_data and _STATE["seconds"] > 0:
        # the node stays "in flight" while this task sleeps: no new fetch to it meanwhile
        # cancelled by close() or a reassignment: end as the fetch itself would
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(_STATE["seconds"])
    return has_data


def install(seconds: float = 0.05) -> None:
    """Pause `seconds` after every empty fetch, in every aiokafka consumer of the process."""
    _STATE["seconds"] = seconds
    Fetcher._proc_fetch_request = _proc_fetch_request  # type: ignore[method-assign]


def uninstall() -> None:
    """Back to aiokafka's own fetching."""
    _STATE["seconds"] = 0.0
    Fetcher._proc_fetch_request = _ORIGINAL  # type: ignore[method-assign]


def installed() -> float:
    """The pause in force (0.0: not installed)."""
    return _STATE["seconds"] if Fetcher._proc_fetch_request is _proc_fetch_request else 0.0
