"""`carbon-accounts sink`: store the result topics in ClickHouse, serve the query catalogue."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import click

from schemas.settings import Settings
from sinks.consumer import Sink
from sinks.serve import QueryServer
from sinks.store import Store
from sinks.writer import Writer, apply_retention
from streams.cli import Context, pass_context
from streams.runtime import Runtime

__all__ = ["command", "start_sink"]

log = logging.getLogger(__name__)


async def start_sink(
    settings: Settings, store: Store, bootstrap: str, stop: asyncio.Event
) -> tuple[Sink, asyncio.Task[None], QueryServer | None]:
    """Start the sink on `store` and, for an embedded store, its query endpoint."""
    await asyncio.to_thread(apply_retention, store, settings.sinks.raw_ttl_days)
    s = settings.sinks
    writer = Writer(
        store,
        batch_rows=s.batch_rows,
        batch_seconds=s.batch_seconds,
        timezone=settings.streams.timezone,
    )
    sink = Sink(writer, settings, bootstrap)
    task = asyncio.create_task(sink.run(stop), name="sink")
    server = None
    if store.embedded:
        server = QueryServer(store, settings.streams.web_port, timezone=settings.streams.timezone)
        try:
            await server.start()
        except OSError as exc:
            log.warning("query endpoint not started on port %s: %s", settings.streams.web_port, exc)
            server = None
    return sink, task, server


@click.command("sink")
@click.option("--duration", type=float, default=None, help="Stop after this many seconds.")
@pass_context
def command(ctx: Context, duration: float | None) -> None:
    """Consume energy.intervals, emissions.windows, labels, points and the registry topics
    into ClickHouse, committing offsets only after each batch is stored."""
    asyncio.run(_main(ctx.settings, duration))


async def _main(settings: Settings, duration: float | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with Runtime(settings) as runtime:
        assert runtime.store is not None
        sink, task, server = await start_sink(settings, runtime.store, runtime.bootstrap, stop)
        where = f"; queries at {server.url}" if server else ""
        click.echo(
            f"sink running: Kafka {runtime.bootstrap}, ClickHouse {runtime.store.dsn}{where}"
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), duration)
        stop.set()
        await task
        if server:
            await server.stop()
        click.echo(f"sink stopped: {sink.stored_batches} batches stored, {sink.retries} retries")


class SinkDemo:
    """The sink and the query endpoint, as a part of `carbon-accounts demo`."""

    def __init__(self, settings: Settings, store: Store, bootstrap: str) -> None:
        self.settings = settings
        self.store = store
        self.bootstrap = bootstrap
        self._stop = asyncio.Event()
        self.sink: Sink | None = None
        self._task: asyncio.Task[None] | None = None
        self._server: QueryServer | None = None

    async def start(self) -> str:
        """Start consuming the result topics into ClickHouse; returns a summary."""
        self.sink, self._task, self._server = await start_sink(
            self.settings, self.store, self.bootstrap, self._stop
        )
        where = f", queries at {self._server.url}" if self._server else ""
        return f"result topics -> ClickHouse{where}"

    def rows(self) -> list[tuple[str, str]]:
        """Status row: consuming or paused, batches stored, retries, dead letters."""
        if self.sink is None:
            return []
        sink = self.sink
        state = "paused (ClickHouse unreachable)" if sink.paused else "consuming"
        return [
            (
                "sink",
                f"{state}; {sink.stored_batches} batches stored, {sink.retries} retries, "
                f"{sink.dead_letters} to .dlq",
            )
        ]

    async def stop(self) -> None:
        """Store what is pending, commit, and stop the query endpoint."""
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 60)
        if self._server is not None:
            await self._server.stop()
