"""`carbon-accounts worker`: a Faust worker running the registered agents.

It starts from the runtime (`streams.runtime.Runtime`): the embedded broker unless
`KAFKA_BOOTSTRAP_SERVERS` is set, and every contract topic created with the
configured partitions. Ctrl-C or SIGTERM stops it cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging

import click
import faust

from schemas.settings import Settings
from streams.app import AGENT_MODULES, create_app
from streams.cli import Context, pass_context
from streams.runtime import Runtime

__all__ = ["command", "run_worker"]


def run_worker(
    settings: Settings, agents: tuple[str, ...] | None = None, *, log_level: str = "WARNING"
) -> None:
    """Start the runtime, run a Faust worker with `agents` until stopped, stop the runtime."""

    def step(name: str, detail: str, seconds: float) -> None:
        click.echo(f"{name}: {detail} ({seconds:.1f}s)", err=True)

    settings.data_path.mkdir(parents=True, exist_ok=True)  # Faust's datadir lives under it
    runtime = Runtime(settings, with_store=False, on_step=step)
    # one loop for the runtime and the worker: the embedded broker dies with the thread
    # that started it (PDEATHSIG), and Runtime starts it in the loop's executor
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(runtime.__aenter__())
    try:
        # tables must have as many partitions as the topic they are keyed like
        n = loop.run_until_complete(_partitions(runtime.bootstrap, settings, "meter.readings"))
        if n and n != settings.kafka.partitions:
            settings = dataclasses.replace(
                settings, kafka=dataclasses.replace(settings.kafka, partitions=n)
            )
        app = create_app(settings, runtime.bootstrap, agents=agents)
        click.echo(
            f"worker {settings.streams.app_id}: agents {', '.join(agents or AGENT_MODULES)} "
            f"on {runtime.bootstrap}",
            err=True,
        )
        worker = faust.Worker(app, loop=loop, loglevel=log_level, override_logging=False)
        with contextlib.suppress(SystemExit):
            worker.execute_from_commandline()
    finally:
        asyncio.run(runtime.__aexit__())


async def _partitions(bootstrap: str, settings: Settings, topic: str) -> int | None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **settings.kafka.client_options())
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
        return len(described.get("partitions") or ()) or None
    finally:
        await admin.close()


@click.command("worker")
@click.option(
    "--agent",
    "agents",
    multiple=True,
    help=f"Agent to run (repeatable; default all: {', '.join(AGENT_MODULES)}).",
)
@click.option("--log-level", default="WARNING", show_default=True)
@pass_context
def command(ctx: Context, agents: tuple[str, ...], log_level: str) -> None:
    """Run a stream worker (Faust) with the agents, until Ctrl-C."""
    logging.getLogger().setLevel(log_level)
    run_worker(ctx.settings, agents or None, log_level=log_level)
