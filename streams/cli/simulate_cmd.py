"""`carbon-accounts simulate`: a fleet of simulated meters on real OPC-UA and Modbus servers."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

import click

from streams.cli import Context, pass_context

__all__ = ["command"]


@click.command("simulate")
@click.option("--meters", type=int, default=100, show_default=True, help="How many meters.")
@click.option(
    "--speed",
    type=float,
    default=1.0,
    show_default=True,
    help="Simulated seconds per real second (900: one 15-minute window a second).",
)
@click.option("--interval", default="1s", show_default=True, help="Poll interval in the map.")
@click.option(
    "--devices",
    "devices_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Where to write the device map (default: <data_dir>/devices.yaml).",
)
@click.option("--opcua-port", type=int, default=0, help="OPC-UA port (default: a free one).")
@click.option("--modbus-port", type=int, default=0, help="Modbus TCP port (default: a free one).")
@click.option(
    "--opcua-share", type=float, default=0.2, show_default=True, help="Share of OPC-UA meters."
)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--duration", type=float, default=None, help="Stop after this many seconds.")
@pass_context
def command(
    ctx: Context,
    meters: int,
    speed: float,
    interval: str,
    devices_path: str | None,
    opcua_port: int,
    modbus_port: int,
    opcua_share: float,
    seed: int,
    duration: float | None,
) -> None:
    """Serve N realistic meters on 127.0.0.1 and write the matching device map.

    Cumulative kWh, Nm3 and GJ counters with daily load shapes, counters near rollover,
    a meter reset, occasional bad quality and garbage values. With --speed the clock runs
    faster: OPC-UA SourceTimestamps and the Modbus gateways' clock registers (which the
    device map names, so the collector uses them as `ts`) carry simulated time.
    """
    from collectors.devices import parse_duration

    if meters < 1 or not 0 <= opcua_share <= 1 or speed <= 0:
        raise click.UsageError("--meters >= 1, --speed > 0, 0 <= --opcua-share <= 1")
    try:
        seconds = parse_duration(interval)
    except ValueError:
        raise click.UsageError(f"--interval {interval!r} is not a duration") from None
    path = Path(devices_path) if devices_path else ctx.settings.path("devices.yaml")
    asyncio.run(
        _simulate(
            meters, speed, seconds, path, opcua_port, modbus_port, opcua_share, seed, duration
        )
    )


async def _simulate(
    meters: int,
    speed: float,
    interval: float,
    path: Path,
    opcua_port: int,
    modbus_port: int,
    opcua_share: float,
    seed: int,
    duration: float | None,
) -> None:
    from collectors.simulator import Fleet, Simulator

    logging.getLogger("asyncua").setLevel(logging.ERROR)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    fleet = Fleet(meters, speed=speed, seed=seed, opcua_share=opcua_share)
    simulator = Simulator(
        fleet, opcua_port=opcua_port, modbus_port=modbus_port, tick=min(0.5, interval / 2)
    )
    async with simulator:
        simulator.write_device_map(path, interval)
        click.echo(
            f"simulating {meters} meters at {speed:g}x: "
            f"{len(simulator.opcua_meters)} on {simulator.opcua_endpoint}, "
            f"{len(simulator.modbus_meters)} on modbus tcp://127.0.0.1:{simulator.modbus_port}",
        )
        click.echo(f"device map: {path}", nl=True)
        if duration is not None:
            loop.call_later(duration, stop.set)
        await stop.wait()
    click.echo("simulator stopped")
