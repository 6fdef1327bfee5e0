"""The `carbon-accounts` command line.

Each command group lives in a module of its own here and is registered below.
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

from infra import fetch_backoff
from schemas.settings import Settings, SettingsError, load_settings

__all__ = ["main"]


class Context:
    """What every command gets: the effective settings."""

    def __init__(self, config: str | None) -> None:
        self.config = config
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = load_settings(self.config)
            except SettingsError as exc:
                raise click.UsageError(str(exc)) from None
        return self._settings


pass_context = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "-c",
    type=click.Path(dir_okay=False),
    default=None,
    help="TOML settings file (default: $CARBON_ACCOUNTS_CONFIG or ./carbon-accounts.toml).",
)
@click.pass_context
def cli(ctx: click.Context, config: str | None) -> None:
    """Carbon Accounts: meters to emissions, colour labels, green loans, carbon-benefit points."""
    ctx.obj = Context(config)
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


#: command modules, streams/cli/<name>_cmd.py, each with a click `command`
_COMMANDS = (
    "config",
    "schemas",
    "infra",
    "demo",
    "worker",
    "replay",
    "simulate",
    "collect",
    "accounts",
    "benchmarks",
    "whatif",
    "simulate_benefit",
    "sink",
    "query",
    "report",
    "store",
)


def _register() -> None:
    for name in _COMMANDS:
        cli.add_command(importlib.import_module(f"streams.cli.{name}_cmd").command)


_register()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script."""
    # the embedded broker answers empty fetches at once: without a pause, every idle
    # consumer of the worker, sink and demo spins (infra/fetch_backoff.py)
    fetch_backoff.install()
    sys.exit(cli.main(args=argv, prog_name="carbon-accounts", standalone_mode=True))
