"""The stream part of `carbon-accounts demo`: reference data, the worker, residents.

Loads the sample accounts, denominators and benchmarks (streams/data/), replays two years
of demo history for them onto `emissions.windows` (so labels appear at once), starts the
Faust worker with every agent of AGENT_MODULES, and feeds `benefit.events` with simulated
residents. Its status rows show the colours and the points.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from datetime import UTC, datetime

import faust
from aiokafka import AIOKafkaConsumer
from prometheus_client import REGISTRY

from schemas.settings import Settings
from streams.app import create_app
from streams.registry import (
    account_key,
    benchmark_key,
    data_path,
    denominator_key,
    produce,
    read_accounts,
    read_benchmarks,
)
from streams.simulate import benefit_events, history_windows, send_benefit_events

__all__ = ["StreamsDemo"]

RESIDENTS = 5000
EVENTS_PER_SECOND = 200.0


class StreamsDemo:
    """Reference data, history, the Faust worker, and the benefit simulator, for the demo."""

    def __init__(self, settings: Settings, bootstrap: str) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.app: faust.App | None = None
        self.colours: dict[str, str | None] = {}
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[object]] = []

    async def start(self) -> str:
        """Load and start everything; returns a one-line summary for the demo's steps."""
        s = self.settings
        opts = s.kafka.producer_options()
        accounts, denominators = read_accounts(data_path("accounts.yaml"), s.streams.timezone)
        benchmarks = read_benchmarks(data_path("benchmarks.yaml"), s.streams.timezone)
        await produce(
            self.bootstrap,
            "accounts.registry",
            [(account_key(a), a, None) for a in accounts],
            **opts,
        )
        await produce(
            self.bootstrap,
            "accounts.denominators",
            [(denominator_key(d), d, d.account_id) for d in denominators],
            **opts,
        )
        await produce(
            self.bootstrap,
            "benchmarks",
            [(benchmark_key(b), b, None) for b in benchmarks],
            **opts,
        )
        history = history_windows(accounts, denominators, benchmarks, datetime.now(UTC))
        await produce(
            self.bootstrap, "emissions.windows", [(w.account_id, w, None) for w in history], **opts
        )
        s.path("faust").parent.mkdir(parents=True, exist_ok=True)
        self.app = create_app(s, self.bootstrap)
        await self.app.start()
        events = benefit_events(RESIDENTS, 10**12, clock=lambda: datetime.now(UTC))
        self._tasks = [
            asyncio.create_task(
                send_benefit_events(
                    self.bootstrap,
                    "benefit.events",
                    events,
                    rate=EVENTS_PER_SECOND,
                    stop=self._stop,
                    **opts,
                )
            ),
            asyncio.create_task(self._follow_labels()),
        ]
        return (
            f"{len(accounts)} accounts, {len(benchmarks)} benchmarks, {len(history)} history "
            f"windows; worker with agents; {RESIDENTS} residents at {EVENTS_PER_SECOND:.0f} "
            "benefit events/s"
        )

    async def _follow_labels(self) -> None:
        consumer = AIOKafkaConsumer(
            "accounts.labels",
            bootstrap_servers=self.bootstrap,
            auto_offset_reset="earliest",
            **self.settings.kafka.client_options(),
        )
        await consumer.start()
        try:
            while not self._stop.is_set():
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for r in records:
                        with contextlib.suppress(ValueError, KeyError, TypeError):
                            label = json.loads(r.value)
                            self.colours[label["account_id"]] = label["new_colour"]
        finally:
            await consumer.stop()

    def rows(self) -> list[tuple[str, str]]:
        """Status rows: accounts per colour, benefit events and points."""
        counts = Counter(c or "no colour" for c in self.colours.values())
        order = ("dark_green", "light_green", "yellow", "red", "no colour")
        colours = ", ".join(f"{c} {counts[c]}" for c in order if counts[c]) or "waiting"
        events = REGISTRY.get_sample_value(
            "carbon_accounts_stream_events_in_total", {"agent": "benefit"}
        )
        points = sum(
            m.value
            for metric in REGISTRY.collect()
            if metric.name == "carbon_accounts_stream_benefit_points"
            for m in metric.samples
            if m.name.endswith("_total")
        )
        return [
            ("labels", colours),
            ("benefit", f"{int(events or 0)} events, {points:,.0f} points"),
        ]

    async def stop(self) -> None:
        """Stop the simulator, the label follower and the worker."""
        self._stop.set()
        for task in self._tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 10)
        if self.app is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.app.stop(), 30)
