"""`carbon-accounts demo`: the whole system on the embedded defaults, with live status."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table

from streams.cli import Context, pass_context
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
    worker = None
    try:
        worker = _start_worker(ctx, runtime)
        _step("worker", f"stream worker (agents: accounting), pid {worker.pid}", 0.0)
        console.print(
            f"[bold green]ready[/] in {time.monotonic() - started:.1f}s — "
            f"KAFKA_BOOTSTRAP_SERVERS={runtime.bootstrap}; Ctrl-C stops"
        )
        with Live(_status(runtime, started, worker), console=console, refresh_per_second=2) as live:
            deadline = None if duration is None else time.monotonic() + duration
            while not stop.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=0.5)
                live.update(_status(runtime, started, worker))
    finally:
        with console.status("stopping ..."):
            if worker is not None:
                await asyncio.to_thread(_stop_worker, worker)
            await runtime.__aexit__()
        console.print("[green]stopped cleanly[/]")


def _start_worker(ctx: Context, runtime: Runtime) -> subprocess.Popen[bytes]:
    """`carbon-accounts worker` as a child on the demo's broker, logging to var/worker.log."""
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": runtime.bootstrap}
    args = [sys.executable, "-m", "streams"]
    if ctx.config:
        args += ["--config", ctx.config]
    log = ctx.settings.path("worker.log").open("ab")
    return subprocess.Popen([*args, "worker"], env=env, stdout=log, stderr=subprocess.STDOUT)


def _stop_worker(worker: subprocess.Popen[bytes]) -> None:
    worker.terminate()
    try:
        worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait(timeout=10)


def _status(
    runtime: Runtime, started: float, worker: subprocess.Popen[bytes] | None = None
) -> Table:
    table = Table(title="status", show_header=False, box=None)
    table.add_row("uptime", f"{time.monotonic() - started:.0f}s")
    table.add_row("kafka", runtime.bootstrap)
    if worker is not None:
        code = worker.poll()
        table.add_row(
            "worker", f"pid {worker.pid} " + ("running" if code is None else f"exited {code}")
        )
    if runtime.store is not None:
        table.add_row("clickhouse", runtime.store.dsn)
    return table
