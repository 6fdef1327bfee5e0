"""`carbon-accounts accounts load FILE`: the accounts registry and denominators into Kafka."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import click

from streams.cli import Context, pass_context
from streams.registry import (
    RegistryError,
    account_key,
    denominator_key,
    produce,
    read_accounts,
)
from streams.runtime import Runtime

__all__ = ["command", "run_with_kafka"]

REGISTRY = "accounts.registry"
DENOMINATORS = "accounts.denominators"


@click.group("accounts")
def command() -> None:
    """The accounts registry (six areas) and their intensity denominators."""


@command.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--check", is_flag=True, help="Validate the file only; send nothing.")
@pass_context
def load(ctx: Context, file: str, check: bool) -> None:
    """Validate FILE (CSV or YAML) and send its accounts to `accounts.registry` (key
    account_id) and its denominators to `accounts.denominators` (key account_id|period_start,
    on the partition of the account). A file with any error is refused whole.

    Kafka: KAFKA_BOOTSTRAP_SERVERS, else the embedded broker on the data directory.
    """
    settings = ctx.settings
    try:
        accounts, denominators = read_accounts(file, settings.streams.timezone)
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{file}: {len(accounts)} accounts, {len(denominators)} denominators, valid")
    if check:
        return

    async def send(bootstrap: str, options: dict[str, Any]) -> None:
        n = await produce(
            bootstrap, REGISTRY, [(account_key(a), a, None) for a in accounts], **options
        )
        m = await produce(
            bootstrap,
            DENOMINATORS,
            [(denominator_key(d), d, d.account_id) for d in denominators],
            **options,
        )
        click.echo(f"sent {n} to {REGISTRY}, {m} to {DENOMINATORS} via {bootstrap}")

    run_with_kafka(ctx, send)


def run_with_kafka(ctx: Context, send: Callable[[str, dict[str, Any]], Awaitable[None]]) -> None:
    """Run `send(bootstrap, producer options)` against the configured or embedded Kafka."""
    settings = ctx.settings

    async def main() -> None:
        async with Runtime(settings, with_store=False) as runtime:
            await send(runtime.bootstrap, settings.kafka.producer_options())

    asyncio.run(main())
