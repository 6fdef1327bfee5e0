"""`carbon-accounts store status|migrate`: the schema migrations of the ClickHouse store.

Every process that opens the store applies the pending migrations itself; these commands
show them and apply them on purpose (`--dry-run` lists the statements first). With
`clickhouse.cluster` set they use the cluster variant, ON CLUSTER.
"""

from __future__ import annotations

import sys

import click

from schemas.settings import Settings
from sinks.migrations import MigrationError, MigrationPlan, migrate, plan
from sinks.store import Store, StoreError, StoreInUseError, open_store
from streams.cli import Context, pass_context

__all__ = ["command"]


def _open(settings: Settings) -> Store:
    try:
        return open_store(settings, apply_ddl=False)
    except StoreInUseError as exc:
        click.echo(
            f"error: {exc}\n(the process that owns it applied the pending migrations when it "
            "opened the store)",
            err=True,
        )
        sys.exit(1)
    except StoreError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


def _variant(settings: Settings) -> tuple[str, str | None]:
    cluster = settings.clickhouse.cluster or None
    return ("ddl_cluster" if cluster else "ddl"), cluster


def _table(todo: MigrationPlan) -> str:
    rows = [("version", "name", "state", "applied_at", "checksum")]
    for s in todo.states:
        checksum = s.migration.checksum if s.migration else s.applied_checksum or ""
        at = s.applied_at.strftime("%Y-%m-%d %H:%M:%S") if s.applied_at else ""
        rows.append((f"{s.version:04d}", s.name, s.state, at, checksum[:12]))
    views = "re-created at the next migrate" if todo.views_due else "current"
    rows.append(("", "views", views, "", todo.views.checksum[:12]))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


@click.group("store")
def command() -> None:
    """The ClickHouse store's schema: versioned migrations (sinks/sql/migrations/)."""


@command.command("status")
@pass_context
def status_cmd(ctx: Context) -> None:
    """List every migration: applied (when), pending, changed since applied, or unknown."""
    variant, _cluster = _variant(ctx.settings)
    with _open(ctx.settings) as store:
        try:
            todo = plan(store, variant)
        except MigrationError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
    click.echo(f"database {ctx.settings.clickhouse.database} ({variant})")
    click.echo(_table(todo))
    pending = len(todo.pending)
    changed = sum(s.state == "changed" for s in todo.states)
    click.echo(f"{pending} pending, {changed} changed")


@command.command("migrate")
@click.option("--dry-run", is_flag=True, help="Print what would run; change nothing.")
@pass_context
def migrate_cmd(ctx: Context, dry_run: bool) -> None:
    """Apply the pending migrations in order, each once; refuse if an applied one changed."""
    variant, cluster = _variant(ctx.settings)
    with _open(ctx.settings) as store:
        try:
            done = migrate(store, variant, dry_run=dry_run, cluster=cluster)
        except MigrationError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
    statements = done.statements
    if not statements:
        click.echo("up to date: nothing to apply")
        return
    if dry_run:
        for label, stmt in statements:
            if cluster:
                stmt = stmt.replace("'{cluster}'", f"'{cluster}'")
            click.echo(f"-- {label}\n{stmt};\n")
        click.echo(f"dry run: {len(statements)} statement(s) would run, nothing changed")
        return
    for mig in done.pending:
        click.echo(f"applied {mig.label} ({len(mig.statements)} statements)")
    if done.views_due:
        click.echo(f"re-created the views ({len(done.views.statements)})")
