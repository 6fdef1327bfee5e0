"""`carbon-accounts replay READINGS.jsonl`: the accounting rules over a file of readings.

The same pure rules as the live agent (`streams.rules.accounting.Accountant`): the
readings (the reading contract, one JSON object per line, in any order) are grouped by
account, put in event-time order (stable: of two readings at the same time, the
earlier line wins, as the earlier arrival does live) and accounted; the final revision
of every window is written as JSON lines. Rejected readings are counted by reason on
stderr.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

import click

from schemas.codec import decode_json
from schemas.contracts import EmissionFactor, Reading
from schemas.errors import ContractError
from schemas.factors import FactorBook, load_factors
from schemas.settings import Settings
from streams.cli import Context, pass_context
from streams.rules.accounting import Accountant, AccountState
from streams.rules.normalise import columns_from_readings

__all__ = ["command", "replay"]


def replay(
    lines: Iterable[str],
    settings: Settings,
    *,
    factors: Iterable[EmissionFactor] = (),
    regions: dict[str, str] | None = None,
) -> tuple[list[dict[str, Any]], Counter[str]]:
    """Emission windows (final revisions, sorted) of the readings in `lines`, and rejects.

    `factors` are taken after the shipped ones (revisions win); `regions` maps an
    account to its region (default: the `*` grid factor region).
    """
    book = FactorBook(load_factors())
    for factor in factors:
        book.add(factor)
    accountant = Accountant.from_settings(settings, book)
    rejected: Counter[str] = Counter()
    by_account: dict[str, list[Reading]] = {}
    for line in lines:
        if not line.strip():
            continue
        try:
            reading = decode_json(Reading, line)
        except ContractError as exc:
            rejected[exc.reason.value] += 1
            continue
        by_account.setdefault(reading.account_id, []).append(reading)
    final: dict[tuple[str, str, str], dict[str, Any]] = {}
    for account_id, readings in by_account.items():
        readings.sort(key=lambda r: r.ts)  # stable: file order among equal times
        state = AccountState(account_id)
        outcome = accountant.process(
            state, columns_from_readings(readings), (regions or {}).get(account_id)
        )
        for _row, error in outcome.normalised.rejected:
            rejected[error.reason.value] += 1
        for window in outcome.windows:
            final[(account_id, window["energy_type"], window["window_start"])] = window
    return [final[k] for k in sorted(final)], rejected


def _lines(path: str) -> Iterator[str]:
    if path == "-":
        yield from sys.stdin
        return
    with Path(path).open(encoding="utf-8") as f:
        yield from f


def _factors(path: str | None) -> list[EmissionFactor]:
    return (
        [decode_json(EmissionFactor, line) for line in _lines(path) if line.strip()] if path else []
    )


@click.command("replay")
@click.argument("readings", type=click.Path(allow_dash=True))
@click.option(
    "--output", "-o", default="-", type=click.Path(allow_dash=True), help="File, or - for stdout."
)
@click.option(
    "--factors",
    "factors_path",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="JSON lines of emission factors (revisions) to apply after the shipped ones.",
)
@pass_context
def command(ctx: Context, readings: str, output: str, factors_path: str | None) -> None:
    """Account READINGS.jsonl (the reading contract, any order) into emission windows."""
    try:
        factors = _factors(factors_path)
    except ContractError as exc:
        raise click.UsageError(f"--factors: {exc}") from None
    windows, rejected = replay(_lines(readings), ctx.settings, factors=factors)
    out: TextIO
    with (
        click.open_file(output, "w", encoding="utf-8") as out  # type: ignore[assignment]
    ):
        for window in windows:
            out.write(json.dumps(window, separators=(",", ":")) + "\n")
    summary = ", ".join(f"{k} {v}" for k, v in sorted(rejected.items())) or "none"
    click.echo(f"{len(windows)} windows; rejected: {summary}", err=True)
