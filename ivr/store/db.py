"""The database: one engine per app, one Session per request, schema brought up to date at start.

Transactions: callers commit explicitly (``session().commit()``) *before* they build the
response, so a failed commit can still be answered with safe TwiML; teardown only rolls back
what was left uncommitted (and logs it) and closes the session. ``replies.remember_response``
commits for the caller, because the stored response and the webhook's effects must become
durable together.

SQLite (the embedded default) gets WAL, a busy timeout and foreign keys on every connection,
and writers that take turns across processes (`sqlite.WriteTurn`);
PostgreSQL runs on psycopg 3 (``postgresql://`` and ``postgresql+psycopg2://`` URLs are served
by it too), with a short connect timeout so an unreachable database fails fast rather than
hanging a Twilio webhook past Twilio's own timeout, and in pipeline mode (`pipeline`), which sends
a webhook's writes with its next statement or its COMMIT: ~2.5 round trips instead of ~8.
"""
from __future__ import annotations

import fcntl
import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from flask import Flask, current_app, g
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from ivr.store import convert, direct, driver, pipeline, sqlite
# Tables kept in their own modules join Base.metadata when imported (create_all, migrations).
from ivr.store import audit, console, outbox, retention, tokens  # noqa: F401
from ivr.store import alerts, sms_contacts  # noqa: F401 - SMS channel and topic alerts
from ivr.store import service_requests  # noqa: F401 - its tables join Base.metadata
from ivr.store.models import Base

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
ALEMBIC_INI = PROJECT_ROOT / "alembic.ini"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 5000     # a writer outside the write turn (sqlite3 shell) waits this long
SQLITE_POOL_SIZE = 48             # connections per process kept open (threads per worker + room)
SQLITE_TURN_WAIT_S = 10           # a writer waits this long for its process's turn (Twilio waits 15 s)
PG_CONNECT_TIMEOUT_S = 3          # well inside Twilio's 15 s webhook timeout
PG_STATEMENT_TIMEOUT_MS = 5000

_EXT_ENGINE = "ivr.db.engine"
_EXT_SESSIONS = "ivr.db.sessionmaker"


def make_engine(url: str) -> Engine:
    """An engine for `url` with the per-backend settings described in the module docstring.

    Raises driver.MissingDriver (naming the extra to install) when the URL's driver is missing.
    """
    parsed = make_url(postgres_on_psycopg(url))
    driver.require(parsed)
    # Writers hand JSON columns their values as they are (dataclasses included): encoded once.
    json_args: dict[str, Any] = {"json_serializer": convert.dumps}
    if parsed.get_backend_name() == "sqlite":
        in_memory = parsed.database in (None, "", ":memory:")
        kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False}, **json_args}
        if in_memory:
            # One shared connection, or every session would see its own empty database.
            kwargs["poolclass"] = StaticPool
        else:
            # A connection for every request thread (gunicorn.conf.py: 32 per worker): the pool's
            # wait for a free connection is not first-come first-served (measured: some requests
            # waited 15 s behind others). Connections open only when needed and cost little.
            kwargs.update(pool_size=SQLITE_POOL_SIZE, max_overflow=SQLITE_POOL_SIZE // 4)
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_on_connect)
        if in_memory:   # a StaticPool's one connection is shared, so it cannot take turns
            direct.install(engine)
        else:
            turn = sqlite.WriteTurn(parsed.database, SQLITE_TURN_WAIT_S)
            turn.install(engine)
            # A webhook's hot statements run on the driver's cursor, taking the turn themselves.
            direct.install(engine, turn.before_driver_write)
        return engine
    if parsed.get_backend_name() == "postgresql":
        # No pool_pre_ping: its SELECT 1 was one of ~7 round trips per webhook. The webhook's
        # first statement (calls.recall_with_state) detects a dead connection and retries once.
        pipelined = parsed.get_driver_name() == "psycopg"
        engine = create_engine(parsed, connect_args={"connect_timeout": PG_CONNECT_TIMEOUT_S}, **json_args,
                               **(pipeline.ENGINE_ARGS if pipelined else {}))
        event.listen(engine, "connect", _postgres_on_connect)
        if pipelined:
            pipeline.install(engine)   # after _postgres_on_connect: the settings are committed first
        return engine
    return create_engine(url, pool_pre_ping=True, **json_args)


#: Drivers whose URLs psycopg 3 serves: the bare name (SQLAlchemy's default driver changes between
#: releases) and psycopg2 (the driver this project used before; its URLs keep working).
_PSYCOPG_SERVES = ("postgresql", "postgresql+psycopg2")


def postgres_on_psycopg(url: str) -> Any:
    """`url` with ``postgresql://`` and ``postgresql+psycopg2://`` served by psycopg 3 (the
    ``postgres`` extra; the store's pipelining needs it); other URLs as they are."""
    parsed = make_url(url)
    if parsed.drivername in _PSYCOPG_SERVES:
        return parsed.set(drivername="postgresql+psycopg")
    return parsed


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    sqlite.autocommit_on_connect(dbapi_conn)   # transactions begin in sqlite.WriteTurn
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    # NORMAL is durable across application crashes in WAL mode; FULL only adds power-loss safety
    # at the cost of an fsync per commit on the webhook's critical path.
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Checkpoints run after responses are sent (sqlite.Checkpointer); SQLite's own, inside some
    # unlucky webhook's commit, stays only as a safety net for a WAL that grew anyway.
    cursor.execute(f"PRAGMA wal_autocheckpoint={sqlite.AUTOCHECKPOINT_PAGES}")
    cursor.close()


def _postgres_on_connect(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute(f"SET statement_timeout = {PG_STATEMENT_TIMEOUT_MS}")
    # Like SQLite's synchronous=NORMAL: a COMMIT does not wait for the WAL to reach the disk
    # (p99 ~2.5 ms per commit measured here). Still durable across application crashes and
    # restarts, and never inconsistent; only a crash of the database server itself can lose
    # the last fraction of a second of calls.
    cursor.execute("SET synchronous_commit = off")
    cursor.close()
    dbapi_conn.commit()  # the driver opened a transaction for the SET; end it so the setting sticks


def is_memory_sqlite(url: Any) -> bool:
    """True for ``sqlite://`` / ``sqlite:///:memory:`` (tests), where migrations are skipped."""
    parsed = make_url(url)
    return parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:")


def alembic_config(url: str) -> Any:
    """The Alembic config for this project with `url` as its database."""
    from alembic.config import Config

    # The scripts ship inside the package, so an installed wheel migrates too; alembic.ini at the
    # repository root (for the `alembic` command) is optional.
    config = Config(str(ALEMBIC_INI)) if ALEMBIC_INI.exists() else Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolation would choke on '%' in URL-encoded options (search_path).
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run Alembic migrations on `engine` up to `revision`, one process at a time."""
    from alembic import command

    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with _migration_lock(engine), engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


#: How long a starting process waits for another one's schema migration (PostgreSQL).
MIGRATION_LOCK_TIMEOUT_MS = 120_000


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """Serialise schema upgrades between worker processes starting at the same moment."""
    backend = engine.url.get_backend_name()
    if backend == "sqlite" and engine.url.database:
        with open(f"{engine.url.database}.migrate.lock", "w") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)  # released when the file closes
            yield
    elif backend == "postgresql":
        with engine.connect() as conn:
            # Arbitrary constant key meaning "IVR schema migration"; a session lock, so it
            # outlives the transactions below and ends with this connection at the latest.
            # Keyed by schema too: advisory locks are server-wide, and one server may hold
            # several lines' schemas (or parallel test runs) that must not wait on each other.
            # Waiting for another process's migration may take longer than the webhooks'
            # statement timeout, so this one wait gets its own, longer limit.
            conn.execute(text(f"SET statement_timeout = {MIGRATION_LOCK_TIMEOUT_MS}"))
            conn.execute(text("SELECT pg_advisory_lock(3110311, hashtext(current_schema()))"))
            conn.execute(text(f"SET statement_timeout = {PG_STATEMENT_TIMEOUT_MS}"))
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(3110311, hashtext(current_schema()))"))
                conn.commit()
    else:
        yield


def init_app(app: Flask) -> None:
    """Create the app's engine from ``IVR_DATABASE_URL`` and bring the schema up to date.

    An unreachable database at start is logged, not fatal: webhooks then send callers to the
    operator (they handle store errors), which beats a line that does not answer at all.
    """
    url = app.config["IVR_DATABASE_URL"]
    engine = make_engine(url)
    app.extensions[_EXT_ENGINE] = engine
    sessions = sessionmaker(engine, expire_on_commit=False)
    event.listen(sessions, "after_flush", _mark_written)
    event.listen(sessions, "do_orm_execute", _mark_statement_write)
    event.listen(sessions, "after_commit", _clear_written)
    event.listen(sessions, "after_soft_rollback", _clear_written)
    event.listen(sessions, "after_soft_rollback", _forget_known_calls)
    app.extensions[_EXT_SESSIONS] = sessions
    try:
        if is_memory_sqlite(url):
            Base.metadata.create_all(engine)
        else:
            upgrade(engine)
    except (OperationalError, OSError) as exc:
        reason = getattr(exc, "orig", None) or exc
        log.error("database unreachable at start (%s); calls will go to the operator until it is back",
                  str(reason).splitlines()[0])
    app.teardown_appcontext(_close_session)
    if make_url(url).get_backend_name() == "sqlite" and not is_memory_sqlite(url):
        app.after_request(sqlite.Checkpointer(engine).after_request)


def engine(app: Flask | None = None) -> Engine:
    """The engine of `app` (default: the current app)."""
    return (app or current_app).extensions[_EXT_ENGINE]


def session() -> Session:
    """This request's Session (created on first use, closed at teardown)."""
    s: Session | None = g.get("ivr_db_session")
    if s is None:
        s = g.ivr_db_session = current_app.extensions[_EXT_SESSIONS]()
    return s


def _close_session(exc: BaseException | None) -> None:
    s: Session | None = g.pop("ivr_db_session", None)
    if s is None:
        return
    if not s.in_transaction() and not s.identity_map and not s.new:
        return   # committed (a webhook's usual end) and holding no objects: nothing to close
    if s.new or s.dirty or s.deleted or s.info.get("wrote"):
        log.warning("rolling back uncommitted database writes at teardown (callers must commit)")
    try:
        s.close()  # rolls back whatever is still open
    except SQLAlchemyError as error:  # a dead database: the response is already on its way
        log.warning("closing the database session failed: %s", type(error).__name__)


def _mark_written(s: Session, _ctx: Any) -> None:
    s.info["wrote"] = True


def _mark_statement_write(state: Any) -> None:
    # INSERT … ON CONFLICT and bulk UPDATE/DELETE bypass the flush, so track them here.
    if state.is_insert or state.is_update or state.is_delete:
        state.session.info["wrote"] = True


def _clear_written(s: Session, *_args: Any) -> None:
    s.info.pop("wrote", None)


def _forget_known_calls(s: Session, *_args: Any) -> None:
    # A rolled-back transaction may have created calls that no longer exist (see calls._known).
    s.info.pop("ivr.store.known_calls", None)


def ping(app: Flask | None = None) -> str | None:
    """None when the database answers, else a one-line reason (for /healthz)."""
    for attempt in (1, 2):
        try:
            with engine(app).connect() as conn:
                conn.execute(text("SELECT 1"))
        except OperationalError as exc:
            # A pooled connection that died (database restarted) is not an outage: the pool was
            # just invalidated, so ask once more on a new connection (there is no pre-ping).
            if attempt == 1 and exc.connection_invalidated:
                continue
            return str(exc.orig or exc).splitlines()[0]
        return None
    return None
