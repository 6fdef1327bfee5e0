"""`carbon-accounts benchmarks load FILE`: industry benchmarks into Kafka (topic `benchmarks`)."""

from __future__ import annotations

from typing import Any

import click

from streams.cli import Context, pass_context
from streams.cli.accounts_cmd import run_with_kafka
from streams.registry import RegistryError, benchmark_key, produce, read_benchmarks

__all__ = ["command"]

BENCHMARKS = "benchmarks"


@click.group("benchmarks")
def command() -> None:
    """Industry benchmarks: per area, industry code, region and period, with source and version."""


@command.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--check", is_flag=True, help="Validate the file only; send nothing.")
@pass_context
def load(ctx: Context, file: str, check: bool) -> None:
    """Validate FILE (CSV or YAML) and send its benchmarks to `benchmarks` (key
    area|industry_code|region|period_start). Every change is an event: the labelling agent
    re-evaluates the accounts of that industry and region. A file with any error is refused.
    """
    try:
        benchmarks = read_benchmarks(file, ctx.settings.streams.timezone)
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{file}: {len(benchmarks)} benchmarks, valid")
    if check:
        return

    async def send(bootstrap: str, options: dict[str, Any]) -> None:
        records = [(benchmark_key(b), b, None) for b in benchmarks]
        n = await produce(bootstrap, BENCHMARKS, records, **options)
        click.echo(f"sent {n} to {BENCHMARKS} via {bootstrap}")

    run_with_kafka(ctx, send)
