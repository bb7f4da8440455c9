"""`ivr db upgrade` / `ivr db current` / `ivr db prune` — the call database's upkeep.

The app also upgrades the schema when it starts; these commands are for operators who want
to migrate before a deploy or check what a database is at.
"""
from __future__ import annotations

import click
from sqlalchemy import Engine


def _database_url(url: str | None) -> str:
    if url:
        return url
    from ivr import create_app

    return str(create_app().config["IVR_DATABASE_URL"])


def register(cli: click.Group) -> None:
    """Add the `db` command group to `cli`."""

    @cli.group("db")
    def db_group() -> None:
        """The call database: schema migrations and retention."""

    @db_group.command("upgrade")
    @click.option("--url", envvar="IVR_DATABASE_URL", help="Database URL (default: the app's).")
    @click.option("--revision", default="head", show_default=True)
    def upgrade(url: str | None, revision: str) -> None:
        """Migrate the database schema to REVISION."""
        from ivr.store import db

        engine = db.make_engine(_database_url(url))
        try:
            db.upgrade(engine, revision)
            click.echo(f"database at {_current(engine) or 'base'}")
        finally:
            engine.dispose()

    @db_group.command("current")
    @click.option("--url", envvar="IVR_DATABASE_URL", help="Database URL (default: the app's).")
    def current(url: str | None) -> None:
        """Print the schema revision the database is at, and whether that is the newest."""
        from ivr.store import db

        engine = db.make_engine(_database_url(url))
        try:
            at = _current(engine)
        finally:
            engine.dispose()
        head = _head()
        state = "up to date" if at == head else f"behind (newest is {head}; run `ivr db upgrade`)"
        click.echo(f"{at or 'empty (no schema)'}: {state}")

    @db_group.command("prune")
    @click.option("--url", envvar="IVR_DATABASE_URL", help="Database URL (default: the app's).")
    @click.option("--dry-run", is_flag=True, help="Only count what would go, per kind.")
    @click.option("--hours", type=click.IntRange(min=1), default=None,
                  help="Keep stored webhook answers this long instead of IVR_RETAIN_REPLIES_DAYS.")
    def prune(url: str | None, dry_run: bool, hours: int | None) -> None:
        """Apply retention now (the worker does it every hour): transcripts, recordings, numbers,
        stored webhook answers and per-call prompt renders older than their IVR_RETAIN_*_DAYS."""
        from ivr import create_app
        from ivr.jobs import retention

        overrides: dict[str, object] = {"IVR_WARM": False, **({"IVR_DATABASE_URL": url} if url else {})}
        if hours is not None:
            overrides["IVR_RETAIN_REPLIES_DAYS"] = hours / 24
        app = create_app(overrides)
        try:
            days = retention.policy_days(app.config)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        report = retention.run(app, dry_run=dry_run)
        kept = ", ".join(f"{kind} {'forever' if d <= 0 else f'{d:g} days'}" for kind, d in days.items())
        click.echo(f"retention ({kept}):")
        click.echo("\n".join(report.lines()))


def _current(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _head() -> str | None:
    from alembic.script import ScriptDirectory

    from ivr.store import db

    return ScriptDirectory.from_config(db.alembic_config("sqlite://")).get_current_head()
