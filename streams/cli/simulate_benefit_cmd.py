"""`carbon-accounts simulate-benefit`: residents' low-carbon behaviour onto `benefit.events`."""

from __future__ import annotations

from typing import Any

import click

from streams.cli import Context, pass_context
from streams.cli.accounts_cmd import run_with_kafka
from streams.simulate import benefit_events, send_benefit_events

__all__ = ["command"]


@click.command("simulate-benefit")
@click.option("--residents", type=int, default=5000, show_default=True)
@click.option("--events", type=int, default=20000, show_default=True)
@click.option("--hours", type=float, default=24.0, show_default=True, help="Span of event times.")
@click.option("--rate", type=float, default=None, help="Events per second (default: all at once).")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--duplicates", type=float, default=0.01, show_default=True)
@click.option("--bad", type=float, default=0.002, show_default=True)
@pass_context
def command(
    ctx: Context,
    residents: int,
    events: int,
    hours: float,
    rate: float | None,
    seed: int,
    duplicates: float,
    bad: float,
) -> None:
    """Send simulated benefit events (bus trips, subway and cycling km, steps, e-bills,
    second-hand trades) of RESIDENTS people to `benefit.events`, with a share of
    duplicates (counted once) and of broken events (to the DLQ)."""
    stream = benefit_events(
        residents, events, seed=seed, hours=hours, duplicates=duplicates, bad=bad
    )

    async def send(bootstrap: str, options: dict[str, Any]) -> None:
        n = await send_benefit_events(bootstrap, "benefit.events", stream, rate=rate, **options)
        click.echo(f"sent {n} events of {residents} residents to benefit.events via {bootstrap}")

    run_with_kafka(ctx, send)
