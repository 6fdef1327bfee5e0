"""`carbon-accounts schemas export DIR`: JSON Schema of every contract."""

from __future__ import annotations

from pathlib import Path

import click

from schemas.jsonschema import export


@click.group("schemas")
def command() -> None:
    """Event contracts."""


@command.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def export_cmd(directory: Path) -> None:
    """Write one JSON Schema file per event contract into DIRECTORY."""
    for path in export(directory):
        click.echo(path)
