"""`carbon-accounts demo`: the whole system on the embedded defaults, with live status.

The demo is a runtime (Kafka, topics, ClickHouse, metrics) and a list of parts, each
with `start() -> summary`, `rows() -> status rows` and `stop()`; parts stop in reverse.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable
from typing import Protocol

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table

from schemas.settings import Settings
from streams.cli import Context, pass_context
from streams.cli._metrics import MetricsServer, metrics_port_option, serve_metrics
from streams.runtime import Runtime

console = Console()


class DemoPart(Protocol):
    async def start(self) -> str: ...
    def rows(self) -> list[tuple[str, str]]: ...
    async def stop(self) -> None: ...


@click.command("demo")
@click.option(
    "--duration",
    type=float,
    default=None,
    help="Stop after this many seconds (default: run until Ctrl-C).",
)
@click.option(
    "--meters", type=int, default=50, show_default=True, help="Simulated meters (0: none)."
)
@click.option(
    "--speed",
    type=float,
    default=900.0,
    show_default=True,
    help="Simulated clock speed (900: one 15-minute window a second).",
)
@metrics_port_option
@pass_context
def command(
    ctx: Context, duration: float | None, meters: int, speed: float, metrics_port: int | None
) -> None:
    """Run the whole system on the embedded defaults until Ctrl-C or --duration.

    Starts Kafka, topics, ClickHouse and /metrics, the meter simulator and collectors,
    the stream worker with every agent, and shows a live status.
    """
    asyncio.run(_demo(ctx.settings, duration, meters, speed, metrics_port))


def _step(name: str, detail: str, seconds: float) -> None:
    console.print(f"[green]✔[/] {name:<11} {detail}  [dim]({seconds:.1f}s)[/]")


def _parts(
    settings: Settings, runtime: Runtime, meters: int, speed: float
) -> list[tuple[str, Callable[[], DemoPart]]]:
    # imported lazily: each part pulls in its own stack (asyncua, pymodbus, faust)
    from streams.cli.field_demo import FieldDemo
    from streams.cli.sink_cmd import SinkDemo
    from streams.cli.streams_demo import StreamsDemo

    bootstrap = runtime.bootstrap
    parts: list[tuple[str, Callable[[], DemoPart]]] = []
    if runtime.store is not None:
        store = runtime.store
        parts.append(("sink", lambda: SinkDemo(settings, store, bootstrap)))
    parts.append(("streams", lambda: StreamsDemo(settings, bootstrap)))
    if meters > 0:
        parts.append(("field", lambda: FieldDemo(settings, bootstrap, meters, speed)))
    return parts


async def _demo(
    settings: Settings,
    duration: float | None,
    meters: int = 50,
    speed: float = 900.0,
    metrics_port: int | None = None,
) -> None:
    started = time.monotonic()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    console.rule("Carbon Accounts demo")
    metrics = serve_metrics(settings, metrics_port)
    _step("metrics", metrics.url if metrics else "disabled ([metrics] enabled = false)", 0.0)
    with console.status("starting ..."):
        runtime = Runtime(settings, on_step=_step)
        await runtime.__aenter__()
    running: list[DemoPart] = []
    try:
        for name, make in _parts(settings, runtime, meters, speed):
            with console.status(f"starting {name} ..."):
                t = time.monotonic()
                part = make()
                running.append(part)
                _step(name, await part.start(), time.monotonic() - t)
        console.print(
            f"[bold green]ready[/] in {time.monotonic() - started:.1f}s — "
            f"KAFKA_BOOTSTRAP_SERVERS={runtime.bootstrap}; Ctrl-C stops"
        )
        await _watch(lambda: _status(runtime, started, metrics, running), stop, duration)
    finally:
        with console.status("stopping ..."):
            for part in reversed(running):
                with contextlib.suppress(Exception):
                    await part.stop()
            await runtime.__aexit__()
            if metrics is not None:
                metrics.close()
        console.print("[green]stopped cleanly[/]")


async def _watch(status: Callable[[], Table], stop: asyncio.Event, duration: float | None) -> None:
    with Live(status(), console=console, refresh_per_second=2) as live:
        deadline = None if duration is None else time.monotonic() + duration
        while not stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.5)
            live.update(status())
    console.print()  # the last status row keeps its own line


def _status(
    runtime: Runtime, started: float, metrics: MetricsServer | None, parts: list[DemoPart]
) -> Table:
    table = Table(title="status", show_header=False, box=None)
    table.add_row("uptime", f"{time.monotonic() - started:.0f}s")
    table.add_row("kafka", runtime.bootstrap)
    if runtime.store is not None:
        table.add_row("clickhouse", runtime.store.dsn)
    if metrics is not None:
        table.add_row("metrics", metrics.url)
    for part in parts:
        for name, value in part.rows():
            table.add_row(name, value)
    return table
