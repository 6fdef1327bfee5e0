"""`carbon-accounts infra broker`: the embedded broker in the foreground."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading

import click

from infra.broker import EmbeddedBroker
from streams.cli import Context, pass_context
from streams.runtime import create_topics


@click.group("infra")
def command() -> None:
    """Local infrastructure."""


@command.command("broker")
@click.option(
    "--port", type=int, default=None, help="Port on 127.0.0.1 (default: settings, else free)."
)
@click.option("--duration", type=float, default=None, help="Stop after this many seconds.")
@pass_context
def broker(ctx: Context, port: int | None, duration: float | None) -> None:
    """Run the embedded Kafka-compatible broker (one machine only) until Ctrl-C.

    Creates every topic with the configured partition count and prints the bootstrap
    address to give other processes as KAFKA_BOOTSTRAP_SERVERS.
    """
    s = ctx.settings
    b = EmbeddedBroker(s.path("kafka"), port=port or s.kafka.embedded_port)
    with b:
        asyncio.run(create_topics(s, b.bootstrap))
        click.echo(f"broker ready: KAFKA_BOOTSTRAP_SERVERS={b.bootstrap}  (data: {b.data_dir})")
        click.echo("Ctrl-C stops it; data stays on disk")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait(duration)
    click.echo("broker stopped")


@command.command("cluster-ddl")
@click.option("--cluster", default=None, help="Cluster name (default: the {cluster} macro).")
def cluster_ddl_cmd(cluster: str | None) -> None:
    """Print the DDL for a ClickHouse cluster (sinks/sql/ddl_cluster/): Replicated tables
    sharded by account_id behind Distributed ones, reference tables copied to every node.

    Apply it once with clickhouse-client --multiquery on any node; the servers need
    `{shard}` and `{replica}` macros and ClickHouse Keeper (README "Running at scale").
    Or let `carbon-accounts store migrate` apply it, with the later migrations and their
    record, when CARBON_ACCOUNTS_CLICKHOUSE_CLUSTER names the cluster.
    """
    from sinks.store import ddl_statements

    for _, statement in ddl_statements("ddl_cluster"):
        if cluster:
            statement = statement.replace("'{cluster}'", f"'{cluster}'")
        click.echo(statement + ";\n")
