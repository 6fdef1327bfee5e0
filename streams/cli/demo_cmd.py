"""`carbon-accounts demo`: the whole system on the embedded defaults, with live status."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table

from sinks.consumer import Sink
from streams.cli import Context, pass_context
from streams.cli.sink_cmd import start_sink
from streams.runtime import Runtime

console = Console()


@click.command("demo")
@click.option(
    "--duration",
    type=float,
    default=None,
    help="Stop after this many seconds (default: run until Ctrl-C).",
)
@pass_context
def command(ctx: Context, duration: float | None) -> None:
    """Start Kafka, topics and ClickHouse, report readiness, run until Ctrl-C or --duration."""
    asyncio.run(_demo(ctx, duration))


def _step(name: str, detail: str, seconds: float) -> None:
    console.print(f"[green]✔[/] {name:<11} {detail}  [dim]({seconds:.1f}s)[/]")


async def _demo(ctx: Context, duration: float | None) -> None:
    settings = ctx.settings
    started = time.monotonic()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    console.rule("Carbon Accounts demo")
    with console.status("starting ..."):
        runtime = Runtime(settings, on_step=_step)
        await runtime.__aenter__()
    stop_sink = asyncio.Event()
    sink = sink_task = server = None
    try:
        if runtime.store is not None:
            t = time.monotonic()
            sink, sink_task, server = await start_sink(
                settings, runtime.store, runtime.bootstrap, stop_sink
            )
            where = f", queries at {server.url}" if server else ""
            _step("sink", f"result topics -> ClickHouse{where}", time.monotonic() - t)
        console.print(
            f"[bold green]ready[/] in {time.monotonic() - started:.1f}s — "
            f"KAFKA_BOOTSTRAP_SERVERS={runtime.bootstrap}; Ctrl-C stops"
        )
        with Live(_status(runtime, started, sink), console=console, refresh_per_second=2) as live:
            deadline = None if duration is None else time.monotonic() + duration
            while not stop.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=0.5)
                live.update(_status(runtime, started, sink))
    finally:
        with console.status("stopping ..."):
            stop_sink.set()
            if sink_task is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(sink_task, 60)
            if server is not None:
                await server.stop()
            await runtime.__aexit__()
        console.print("[green]stopped cleanly[/]")


def _status(runtime: Runtime, started: float, sink: Sink | None = None) -> Table:
    table = Table(title="status", show_header=False, box=None)
    table.add_row("uptime", f"{time.monotonic() - started:.0f}s")
    table.add_row("kafka", runtime.bootstrap)
    if runtime.store is not None:
        table.add_row("clickhouse", runtime.store.dsn)
    if sink is not None:
        state = "paused (ClickHouse unreachable)" if sink.paused else "consuming"
        table.add_row(
            "sink",
            f"{state}; {sink.stored_batches} batches stored, {sink.retries} retries, "
            f"{sink.dead_letters} to .dlq",
        )
    return table
