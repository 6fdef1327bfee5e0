"""`carbon-accounts collect`: read the meters of a device map into Kafka."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time

import click
from prometheus_client import start_http_server

from schemas.settings import Settings
from streams.cli import Context, pass_context

__all__ = ["command", "start_metrics"]


def start_metrics(settings: Settings) -> int | None:
    """Serve Prometheus metrics on the configured port, or the next free one; returns it."""
    if not settings.metrics.enabled:
        return None
    for port in range(settings.metrics.port, settings.metrics.port + 50):
        try:
            start_http_server(port, addr="127.0.0.1")
            return port
        except OSError:
            continue
    return None


@click.command("collect")
@click.option(
    "--devices",
    "devices_path",
    type=click.Path(dir_okay=False),
    required=True,
    help="The device map (YAML), e.g. the one `carbon-accounts simulate` writes.",
)
@click.option("--topic", default="meter.readings", show_default=True, help="Readings topic.")
@click.option("--duration", type=float, default=None, help="Stop after this many seconds.")
@pass_context
def command(ctx: Context, devices_path: str, topic: str, duration: float | None) -> None:
    """Poll OPC-UA and Modbus meters and publish their readings to Kafka.

    Needs KAFKA_BOOTSTRAP_SERVERS (e.g. from `carbon-accounts infra broker`). While Kafka is
    unreachable readings go to the disk spool (<data_dir>/spool) and are replayed in order.
    SIGTERM or Ctrl-C stop cleanly: polling stops, the spool drains, nothing is sent twice.
    """
    # imported here: asyncua and pymodbus are heavy, and other commands do not need them
    from collectors.devices import DeviceMapError, load_device_map

    settings = ctx.settings
    try:
        device_map = load_device_map(devices_path)
    except DeviceMapError as exc:
        raise click.ClickException(str(exc)) from None
    bootstrap = settings.kafka.bootstrap_servers
    if not bootstrap:
        raise click.UsageError(
            "set KAFKA_BOOTSTRAP_SERVERS (`carbon-accounts infra broker` prints one)"
        )
    logging.getLogger("collectors").setLevel(logging.INFO)
    # the collectors count and log device errors themselves (rate-limited): keep the
    # libraries' per-request error lines out of the log
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    logging.getLogger("asyncua").setLevel(logging.ERROR)
    port = start_metrics(settings)
    click.echo(
        f"collecting {len(device_map.meters)} meters from {len(device_map.devices)} devices "
        f"into {topic} at {bootstrap}; metrics on :{port}; spool in "
        f"{settings.path(settings.collectors.spool_dir)}",
    )
    published, spooled = asyncio.run(_collect(settings, device_map, bootstrap, topic, duration))
    click.echo(f"stopped: {published} readings published, {spooled} left in the spool")


async def _ensure_topics(settings: Settings, bootstrap: str, topic: str) -> None:
    """Create the readings topic and its .dlq if missing (a broker that auto-creates would
    make one partition); best effort: with Kafka down the collector starts and spools."""
    from infra.broker import ensure_topics
    from schemas.dlq import dlq_topic

    k = settings.kafka
    specs = [(topic, k.partitions, False), (dlq_topic(topic), k.partitions, False)]
    try:
        await asyncio.wait_for(
            ensure_topics(bootstrap, specs, k.replication_factor, **k.client_options()), 10
        )
    except Exception as exc:  # Kafka down or no rights: readings spool until it is back
        logging.getLogger(__name__).warning("could not check topic %s: %r", topic, exc)


async def _collect(
    settings: Settings, device_map: object, bootstrap: str, topic: str, duration: float | None
) -> tuple[int, int]:
    from collectors.runner import Collectors

    await _ensure_topics(settings, bootstrap, topic)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    started = time.monotonic()
    async with Collectors(device_map, settings, bootstrap, topic=topic) as collectors:  # type: ignore[arg-type]
        if duration is not None:
            loop.call_later(duration, stop.set)
        with contextlib.suppress(asyncio.CancelledError):
            await collectors.run(stop)
    logging.getLogger(__name__).info("ran %.1fs", time.monotonic() - started)
    return collectors.publisher.published, collectors.spool.backlog_readings
