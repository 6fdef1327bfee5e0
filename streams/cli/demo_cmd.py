"""`carbon-accounts demo`: the whole system on the embedded defaults, with live status."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
import time

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table

from streams.cli import Context, pass_context
from streams.cli._metrics import MetricsServer, metrics_port_option, serve_metrics
from streams.cli.labelling_demo import LabellingDemo
from streams.runtime import Runtime

console = Console()


@click.command("demo")
@click.option(
    "--duration",
    type=float,
    default=None,
    help="Stop after this many seconds (default: run until Ctrl-C).",
)
@metrics_port_option
@pass_context
def command(ctx: Context, duration: float | None, metrics_port: int | None) -> None:
    """Start Kafka, topics and ClickHouse, report readiness, run until Ctrl-C or --duration."""
    asyncio.run(_demo(ctx, duration, metrics_port))


def _step(name: str, detail: str, seconds: float) -> None:
    console.print(f"[green]✔[/] {name:<11} {detail}  [dim]({seconds:.1f}s)[/]")


async def _demo(ctx: Context, duration: float | None, metrics_port: int | None = None) -> None:
    settings = ctx.settings
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
    labelling: LabellingDemo | None = None
    try:
        with console.status("labelling and carbon benefit ..."):
            t = time.monotonic()
            labelling = LabellingDemo(settings, runtime.bootstrap)
            _step("labelling", await labelling.start(), time.monotonic() - t)
        console.print(
            f"[bold green]ready[/] in {time.monotonic() - started:.1f}s — "
            f"KAFKA_BOOTSTRAP_SERVERS={runtime.bootstrap}; Ctrl-C stops"
        )
        status = functools.partial(_status, runtime, started, metrics, labelling)
        with Live(status(), console=console, refresh_per_second=2) as live:
            deadline = None if duration is None else time.monotonic() + duration
            while not stop.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=0.5)
                live.update(status())
    finally:
        with console.status("stopping ..."):
            if labelling is not None:
                await labelling.stop()
            await runtime.__aexit__()
            if metrics is not None:
                metrics.close()
        console.print("[green]stopped cleanly[/]")


def _status(
    runtime: Runtime,
    started: float,
    metrics: MetricsServer | None = None,
    labelling: LabellingDemo | None = None,
) -> Table:
    table = Table(title="status", show_header=False, box=None)
    table.add_row("uptime", f"{time.monotonic() - started:.0f}s")
    table.add_row("kafka", runtime.bootstrap)
    if runtime.store is not None:
        table.add_row("clickhouse", runtime.store.dsn)
    if metrics is not None:
        table.add_row("metrics", metrics.url)
    for name, value in labelling.rows() if labelling is not None else ():
        table.add_row(name, value)
    return table
