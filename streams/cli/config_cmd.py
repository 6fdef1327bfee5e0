"""`carbon-accounts config show`: the effective settings, secrets masked."""

from __future__ import annotations

import json

import click

from streams.cli import Context, pass_context


@click.group("config")
def command() -> None:
    """Settings."""


@command.command("show")
@click.option("--format", "fmt", type=click.Choice(["toml", "json"]), default="toml")
@pass_context
def show(ctx: Context, fmt: str) -> None:
    """Print the effective settings (defaults < TOML file < environment), secrets masked."""
    data = ctx.settings.as_dict()
    if fmt == "json":
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(_toml(data))


def _value(v: object) -> str:
    if v is None:
        return '""  # unset'
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    return json.dumps(str(v))


def _toml(data: dict) -> str:
    top = [f"{k} = {_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    out = ["\n".join(top)]
    for section, values in data.items():
        if isinstance(values, dict):
            out.append(
                f"[{section}]\n" + "\n".join(f"{k} = {_value(v)}" for k, v in values.items())
            )
    return "\n\n".join(out)
