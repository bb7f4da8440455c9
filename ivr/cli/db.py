"""`ivr db upgrade` / `ivr db current` / `ivr db prune` — the call database's upkeep.

The app also upgrades the schema when it starts; these commands are for operators who want
to migrate before a deploy or check what a database is at. `database_url()` and `session()`
open the store for every command that needs nothing else (tokens, users, requests, alerts).
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import click
from flask import Flask
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ivr import create_app

# A command imports the store, the app and the job queue when it runs, not here: see ivr/cli/__init__.py.


def database_url(url: str | None = None) -> str:
    """`url`, else IVR_DATABASE_URL, else the app's default SQLite file in its instance folder
    (what create_app() would use, without building the app and loading its recognisers)."""
    url = url or os.environ.get("IVR_DATABASE_URL")
    if url:
        return url
    instance = Path(Flask("ivr", instance_relative_config=True).instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{instance / 'ivr.sqlite3'}"


@contextmanager
def session(url: str | None = None) -> Iterator[Session]:
    """A session on `database_url(url)` for a command that needs only the store (not the app).
    The schema is upgraded first: a command may run before the app ever started."""
    from ivr.store import db   # lazily, like every command's store: see ivr/cli/__init__.py

    engine = db.make_engine(database_url(url))
    try:
        if not db.is_memory_sqlite(str(engine.url)):
            db.upgrade(engine)
        with Session(engine) as s:
            yield s
    finally:
        engine.dispose()


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

        engine = db.make_engine(database_url(url))
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

        engine = db.make_engine(database_url(url))
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
