"""`carbon-accounts demo`: the whole system on the embedded defaults, with live status."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from typing import Any

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
@pass_context
def command(ctx: Context, duration: float | None, meters: int, speed: float) -> None:
    """Start Kafka, topics, ClickHouse, the meter simulator and the collectors; show status."""
    asyncio.run(_demo(ctx, duration, meters, speed))


def _step(name: str, detail: str, seconds: float) -> None:
    console.print(f"[green]✔[/] {name:<11} {detail}  [dim]({seconds:.1f}s)[/]")


class _Field:
    """The simulated meters and the collector reading them (the demo's field side)."""

    def __init__(self, ctx: Context, bootstrap: str, meters: int, speed: float) -> None:
        from collectors.simulator import Fleet, Simulator

        self.settings = ctx.settings
        self.bootstrap = bootstrap
        self.simulator = Simulator(Fleet(meters, speed=speed), tick=0.5)
        self.collectors: Any = None  # a collectors.runner.Collectors once started
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        t = time.monotonic()
        logging.getLogger("asyncua").setLevel(logging.ERROR)
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
        await self.simulator.start()
        path = self.settings.path("devices.yaml")
        self.simulator.write_device_map(path, interval=1.0)
        fleet = self.simulator.fleet
        _step(
            "simulator",
            f"{len(fleet.meters)} meters at {fleet.speed:g}x, device map {path}",
            time.monotonic() - t,
        )
        from collectors.devices import load_device_map
        from collectors.runner import Collectors

        t = time.monotonic()
        self.collectors = Collectors(load_device_map(path), self.settings, self.bootstrap)
        await self.collectors.__aenter__()
        self.task = asyncio.create_task(self.collectors.run(self.stop))
        _step("collectors", "OPC-UA + Modbus into meter.readings", time.monotonic() - t)

    async def aclose(self) -> None:
        self.stop.set()
        if self.collectors is not None:
            await self.collectors.stop()
        if self.task is not None:
            with contextlib.suppress(Exception):
                await self.task
        await self.simulator.stop()


async def _demo(ctx: Context, duration: float | None, meters: int = 0, speed: float = 900) -> None:
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
    field: _Field | None = None
    try:
        if meters > 0:
            with console.status("starting the simulated meters ..."):
                field = _Field(ctx, runtime.bootstrap, meters, speed)
                await field.start()
        console.print(
            f"[bold green]ready[/] in {time.monotonic() - started:.1f}s — "
            f"KAFKA_BOOTSTRAP_SERVERS={runtime.bootstrap}; Ctrl-C stops"
        )
        with Live(_status(runtime, started, field), console=console, refresh_per_second=2) as live:
            deadline = None if duration is None else time.monotonic() + duration
            while not stop.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=0.5)
                live.update(_status(runtime, started, field))
    finally:
        with console.status("stopping ..."):
            if field is not None:
                await field.aclose()
            await runtime.__aexit__()
        console.print("[green]stopped cleanly[/]")


def _status(runtime: Runtime, started: float, field: _Field | None = None) -> Table:
    table = Table(title="status", show_header=False, box=None)
    table.add_row("uptime", f"{time.monotonic() - started:.0f}s")
    table.add_row("kafka", runtime.bootstrap)
    if runtime.store is not None:
        table.add_row("clickhouse", runtime.store.dsn)
    if field is not None and field.collectors is not None:
        fleet = field.simulator.fleet
        publisher = field.collectors.publisher
        sim_now = time.strftime("%Y-%m-%d %H:%M", time.gmtime(fleet.last))
        table.add_row("meters", f"{len(fleet.meters)} simulated, clock {sim_now} UTC")
        table.add_row(
            "readings",
            f"{publisher.published} published to meter.readings, "
            f"{publisher.spool.backlog_readings} waiting in the spool",
        )
    return table
