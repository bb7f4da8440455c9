"""Fewer PostgreSQL round trips per webhook: psycopg 3's pipeline mode carries writes with the
next statement that needs an answer.

Each PostgreSQL round trip is, on a loaded host, also a wait for the server process to be
scheduled, so a webhook's tail latency grows with their number. Without help a webhook makes
about 8 (BEGIN, its read, 4-5 writes, COMMIT).

With `install`, every connection of the engine stays in psycopg's pipeline mode
(``Connection.pipeline()``): a statement is queued, not sent and waited for.

- A statement executed with the `DEFER` execution option (a write whose result the webhook does
  not need: state, turn, event, outcome, the stored answer) stays queued.
- Any other statement is followed by ``Pipeline.sync()``: what is queued (psycopg's own BEGIN,
  deferred writes, this statement) goes in one round trip, and its result is there for
  SQLAlchemy as usual (rows, rowcount).
- COMMIT (psycopg's ``commit()``) sends what is still queued with it, one round trip; a failure
  (a deferred write's constraint, a duplicate stored answer) is raised by the commit.
- Whatever statement an error surfaces at (psycopg may report a deferred write's error at any
  later execute), the transaction is rolled back at once (`_recover`), so the connection is
  usable again and SQLAlchemy's own rollback finds nothing left to do.

So a typical webhook is two round trips: BEGIN + its read, then its writes + COMMIT. Order is
kept and everything is one transaction: a rollback, or the connection going back to the pool,
drops what was queued. A deferred write's error surfaces at the next statement or the commit;
webhooks treat both alike (rescue TwiML, nothing committed). SQLite ignores `DEFER`: a
statement costs it no round trip.
"""
from __future__ import annotations

import contextlib
from typing import Any

from sqlalchemy import Engine, event

#: Execution option: this statement may wait in the pipeline for the next one that is sent.
DEFER = {"ivr_defer": True}
_PIPELINE = "ivr.pipeline"   # key in the pooled connection's info: (context manager, Pipeline)


#: create_engine arguments for an engine `install` is meant for:
#: - the pool's reset on return is `_reset` (a rollback only when a transaction is open;
#:   psycopg's rollback() always costs an empty round trip in pipeline mode);
#: - every result keeps its rowcount: psycopg 3 forgets it when SQLAlchemy closes an INSERT's
#:   cursor, and store code counts INSERT … ON CONFLICT DO NOTHING rows (calls.ensure_call).
ENGINE_ARGS: dict[str, Any] = {"pool_reset_on_return": None, "execution_options": {"preserve_rowcount": True}}


def install(engine: Engine) -> None:
    """Keep `engine`'s connections in pipeline mode and make `DEFER` effective (psycopg 3).
    The engine is made with `ENGINE_ARGS`."""
    event.listen(engine, "connect", _enter_pipeline)
    event.listen(engine.pool, "checkin", _reset)
    event.listen(engine.pool, "close", _leave_pipeline)
    event.listen(engine.pool, "invalidate", _leave_pipeline)
    event.listen(engine, "do_execute", _do_execute)
    event.listen(engine, "do_executemany", _do_executemany)
    event.listen(engine, "do_execute_no_params", _do_execute_no_params)
    plain_commit = engine.dialect.do_commit

    def _commit(dbapi_conn: Any) -> None:
        # A failed COMMIT in pipeline mode leaves the server's transaction open and aborted
        # (the queued COMMIT was skipped): end it, so the pooled connection is usable again.
        try:
            plain_commit(dbapi_conn)
        except Exception:
            _recover(dbapi_conn)
            raise

    # SQLAlchemy wraps the dialect's commit in its error handling (IntegrityError and so on),
    # which an engine event around it would not get.
    engine.dialect.do_commit = _commit  # type: ignore[method-assign]
    # psycopg's server-side (named) cursors do not work in pipeline mode: `yield_per` and
    # `stream_results` then fetch the whole result and hand it out in chunks, as on SQLite.
    engine.dialect.supports_server_side_cursors = False


def _enter_pipeline(dbapi_conn: Any, record: Any) -> None:
    # After the other connect listeners (settings, committed). The pipeline lasts as long as
    # the connection: psycopg leaves pipeline mode when the connection closes.
    manager = dbapi_conn.pipeline()
    record.info[_PIPELINE] = (manager, manager.__enter__())


def _leave_pipeline(_dbapi_conn: Any, record: Any, *_args: Any) -> None:
    """Pool `close`/`invalidate` listener: leave pipeline mode before the connection closes (a
    pipeline left to the garbage collector on a dead connection logs a warning)."""
    entry = record.info.pop(_PIPELINE, None)
    if entry is not None:
        with contextlib.suppress(Exception):   # a dead connection cannot say goodbye
            entry[0].__exit__(None, None, None)


def _reset(dbapi_conn: Any, _record: Any) -> None:
    """Pool `checkin` listener: a connection goes back with no transaction open and nothing queued."""
    if dbapi_conn is None:   # invalidated: already closed
        return
    from psycopg.pq import TransactionStatus   # imported only where psycopg serves the engine

    if dbapi_conn.closed:
        return
    if dbapi_conn.pgconn.transaction_status != TransactionStatus.IDLE:
        dbapi_conn.rollback()


def _pipeline(context: Any) -> Any:
    try:
        entry = context.root_connection.connection.info.get(_PIPELINE)
    except NotImplementedError:   # the engine's first connect (dialect set-up) has no pool entry
        return None
    return entry[1] if entry else None


def _recover(dbapi_conn: Any) -> None:
    """After an error, end the transaction and the pipeline's aborted state at once.

    psycopg may report a queued write's error at any later execute (when its result has already
    arrived); the statements queued behind it are then aborted, and the first rollback() only
    collects their errors. So roll back until one succeeds: the connection is then clean, and
    the rollback SQLAlchemy sends next is a no-op.
    """
    for _attempt in range(3):
        try:
            dbapi_conn.rollback()
            return
        except Exception:   # noqa: BLE001 - the error being raised is the caller's; retry
            continue


def _do_execute(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
    pipeline = _pipeline(context)
    if pipeline is None:
        return False   # the dialect executes it as usual
    try:
        cursor.execute(statement, parameters)
        if not context.execution_options.get("ivr_defer"):
            pipeline.sync()
    except Exception:
        _recover(cursor.connection)
        raise
    return True


def _do_execute_no_params(cursor: Any, statement: str, context: Any) -> bool:
    pipeline = _pipeline(context)
    if pipeline is None:
        return False
    try:
        cursor.execute(statement)
        pipeline.sync()
    except Exception:
        _recover(cursor.connection)
        raise
    return True


def _do_executemany(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
    pipeline = _pipeline(context)
    if pipeline is None:
        return False
    try:
        cursor.executemany(statement, parameters)
        if not context.execution_options.get("ivr_defer"):
            pipeline.sync()
    except Exception:
        _recover(cursor.connection)
        raise
    return True


def pending(conn: Any) -> int:
    """How many statements on this SQLAlchemy Connection still wait for their result (queued and
    not yet synced; psycopg's own BEGIN counts too). For tests and diagnostics."""
    try:
        entry = conn.connection.info.get(_PIPELINE)
    except NotImplementedError:
        return 0
    return len(entry[1].result_queue) if entry else 0
