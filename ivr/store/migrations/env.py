"""Alembic environment: migrates to `ivr.store.models.Base.metadata`.

Called by the app at start and by `ivr db upgrade` with a ready connection in
``config.attributes["connection"]``; run from the `alembic` command it connects to
``IVR_DATABASE_URL`` (or the URL in the ini file) itself.
"""
from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection

from ivr.store import audit, console, retention, tokens  # noqa: F401 - their tables are in Base.metadata
from ivr.store import alerts, sms_contacts  # noqa: F401 - SMS channel and topic alerts
from ivr.store import service_requests  # noqa: F401 - its tables join Base.metadata
from ivr.store.db import make_engine
from ivr.store.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    # SQLite cannot ALTER most things; batch mode rebuilds tables so later migrations work there.
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Use the caller's connection, or open one to the configured database."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    if config.config_file_name is not None:
        fileConfig(config.config_file_name)  # only for the standalone `alembic` command
    url = os.environ.get("IVR_DATABASE_URL") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("set IVR_DATABASE_URL (or use `ivr db upgrade`, which knows the default)")
    engine = make_engine(url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def run_migrations_offline() -> None:
    """Emit SQL for the configured URL without connecting (`alembic upgrade head --sql`)."""
    url = os.environ.get("IVR_DATABASE_URL") or config.get_main_option("sqlalchemy.url")
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
