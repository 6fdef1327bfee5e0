"""`carbon-accounts whatif --benchmark FILE`: colour changes a benchmark proposal would make."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table

from sinks.store import StoreError, open_store
from streams.cli import Context, pass_context
from streams.registry import RegistryError, load_rulebook, read_benchmarks
from streams.whatif import WhatIf, whatif

__all__ = ["command", "render"]


@click.command("whatif")
@click.option(
    "--benchmark",
    "benchmark_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Proposed benchmarks (CSV or YAML, as `benchmarks load` takes).",
)
@click.option(
    "--replace", is_flag=True, help="The proposal replaces every benchmark (default: overlays)."
)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@pass_context
def command(ctx: Context, benchmark_file: str, replace: bool, fmt: str) -> None:
    """How many accounts would change colour, per industry, if FILE's benchmarks were adopted.

    Computed from ClickHouse (emissions, accounts, denominators, benchmarks in force) with
    the live labelling rule; nothing is written and live labels are untouched.
    """
    settings = ctx.settings
    try:
        proposed = read_benchmarks(benchmark_file, settings.streams.timezone)
        rules = load_rulebook(settings)
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        with open_store(settings) as store:
            result = whatif(store, settings, proposed, rules, replace=replace)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    if fmt == "json":
        click.echo(json.dumps(result.as_json(), indent=2))
    else:
        render(result, Console())


def render(result: WhatIf, console: Console) -> None:
    """Print the per-industry table and the accounts that would change."""
    table = Table(title=f"what-if: {result.changed} of {len(result.changes)} accounts change")
    for col in ("area", "industry", "accounts", "changed", "better", "worse", "gains", "loses"):
        table.add_column(col, justify="right" if col not in ("area", "industry") else "left")
    for i in result.industries:
        d = i.directions
        table.add_row(
            i.area,
            i.industry,
            str(i.accounts),
            str(i.changed),
            *(str(d.get(k, 0)) for k in ("better", "worse", "gains", "loses")),
        )
    console.print(table)
    for c in result.changes:
        if c.changed:
            console.print(
                f"  {c.account_id} ({c.industry_code}): {c.current or 'no colour'} -> "
                f"{c.proposed or 'no colour'}"
                + (f"  K {c.current_k:.3f} -> {c.proposed_k:.3f}" if c.proposed_k else "")
            )
