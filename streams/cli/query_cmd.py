"""`carbon-accounts query NAME` and `carbon-accounts report ACCOUNT`: the analysts' catalogue.

Both open the store; when another process owns the embedded store (StoreInUseError)
they ask that process's query endpoint (127.0.0.1, `streams.web_port`) instead.
Unknown query names and missing or ill-typed parameters exit with code 2.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import click

from schemas.settings import Settings
from sinks.catalogue import CatalogueError, bind, catalogue, get_query, run_query
from sinks.report import dumps, jsonable, render_html, report_data
from sinks.store import StoreError, StoreInUseError, open_store
from streams.cli import Context, pass_context

__all__ = ["format_sections", "query", "report"]

Sections = list[dict[str, Any]]  # [{"section", "columns", "rows"}], JSON values


def _fail(message: str, code: int = 2) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _remote(settings: Settings, path: str, params: dict[str, str]) -> tuple[int, bytes]:
    url = f"http://127.0.0.1:{settings.streams.web_port}{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=120) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError as exc:
        _fail(
            f"the store is in use by another process and its query endpoint {url} does not "
            f"answer ({exc}); run this where the store is owned, or set CLICKHOUSE_URL",
            1,
        )
        raise  # unreachable


def _run(settings: Settings, name: str, params: dict[str, str]) -> Sections:
    """Run a query locally, or through the owner's endpoint when the store is in use."""
    try:
        store = open_store(settings)
    except StoreInUseError:
        status, body = _remote(settings, "/query/" + urllib.parse.quote(name), params)
        data = json.loads(body)
        if status == 400:
            _fail(data["error"])
        if status != 200:
            _fail(f"query endpoint: {data.get('error', body[:200])}", 1)
        return data["sections"]
    except StoreError as exc:
        _fail(str(exc), 1)
    try:
        results = run_query(store, name, params, timezone=settings.streams.timezone)
    finally:
        store.close()
    return [
        {
            "section": r.section,
            "columns": r.columns,
            "rows": [[jsonable(v) for v in row] for row in r.rows],
        }
        for r in results
    ]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}" if abs(value) < 1e15 else repr(value)
    return str(value)


def format_sections(sections: Sections, fmt: str) -> str:
    """Query results as an aligned table, CSV or JSON (one block per section)."""
    if fmt == "json":
        out = {
            s["section"]: [dict(zip(s["columns"], r, strict=True)) for r in s["rows"]]
            for s in sections
        }
        return json.dumps(out, indent=2, ensure_ascii=False)
    blocks = []
    for s in sections:
        title = f"# {s['section']}\n" if len(sections) > 1 else ""
        if fmt == "csv":
            buf = io.StringIO()
            writer = csv.writer(buf, lineterminator="\n")
            writer.writerow(s["columns"])
            writer.writerows([["" if v is None else v for v in r] for r in s["rows"]])
            blocks.append(title + buf.getvalue())
            continue
        cells = [[_cell(v) for v in r] for r in s["rows"]]
        widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(s["columns"])]
        lines = ["  ".join(c.ljust(w) for c, w in zip(s["columns"], widths, strict=True)).rstrip()]
        lines.append("  ".join("-" * w for w in widths))
        lines += [
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells
        ]
        lines.append(f"({len(cells)} row{'s' if len(cells) != 1 else ''})")
        blocks.append(title + "\n".join(lines) + "\n")
    return "\n".join(blocks)


def _params(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            _fail(f"--param {pair!r}: expected NAME=VALUE")
        out[key.strip()] = value
    return out


@click.command("query")
@click.argument("name", required=False)
@click.option(
    "--param", "-p", "pairs", multiple=True, metavar="NAME=VALUE", help="A parameter (repeat)."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
@pass_context
def query(ctx: Context, name: str | None, pairs: tuple[str, ...], fmt: str) -> None:
    """Run the catalogue query NAME (no NAME: list the catalogue).

    Example: carbon-accounts query top-emitters -p from_date=2026-01-01 -p to_date=2026-01-31
    """
    if name is None:
        for qname, q in catalogue().items():
            params = ", ".join(
                p.name + ("" if p.default is None else f"={p.default}") for p in q.params.values()
            )
            click.echo(f"{qname}  ({params})\n    {q.description}\n")
        return
    params = _params(pairs)
    try:
        bind(get_query(name), params, timezone=ctx.settings.streams.timezone)
    except CatalogueError as exc:
        _fail(str(exc))
    click.echo(format_sections(_run(ctx.settings, name, params), fmt), nl=False)


@click.command("report")
@click.argument("account_id")
@click.option(
    "--format", "fmt", type=click.Choice(["html", "json"]), default="html", show_default=True
)
@click.option("--as-of", default=None, help="Report date, RFC 3339 with offset (default: now).")
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False), default=None, help="Write to FILE."
)
@pass_context
def report(ctx: Context, account_id: str, fmt: str, as_of: str | None, output: str | None) -> None:
    """The carbon credit report of ACCOUNT_ID: a printable HTML page with charts, or JSON."""
    params = {"as_of": as_of} if as_of else {}
    try:
        bind(
            get_query("credit-report"),
            {**params, "account_id": account_id},
            timezone=ctx.settings.streams.timezone,
        )
    except CatalogueError as exc:
        _fail(str(exc))
    sections = _run(ctx.settings, "credit-report", {**params, "account_id": account_id})
    data = report_data(
        {
            s["section"]: [dict(zip(s["columns"], r, strict=True)) for r in s["rows"]]
            for s in sections
        }
    )
    data["account"] = data["account"][0] if data.get("account") else {}
    data["industry_percentile"] = (
        data["industry_percentile"][0] if data.get("industry_percentile") else {}
    )
    if not data["account"]:
        _fail(f"no account {account_id!r} in the registry", 1)
    text = render_html(data, as_of=as_of or "now") if fmt == "html" else dumps(data) + "\n"
    if output:
        Path(output).write_text(text)
        click.echo(f"wrote {output}")
    else:
        click.echo(text, nl=False)


command = query
