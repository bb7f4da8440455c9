"""Fewer PostgreSQL round trips per webhook: writes, BEGIN and COMMIT travel with other statements.

Each PostgreSQL statement is a network round trip, and on a loaded host every round trip is
also a wait for the server process to be scheduled: the tail of a webhook's latency grows with
their number (psycopg2 alone sends BEGIN, each statement and COMMIT separately: ~8 per webhook).

- Writes whose result the webhook does not need (state, turn, events, outcome, the stored
  answer) are executed with the `DEFER` execution option: the statement is rendered with its
  parameters (psycopg2's own quoting, `cursor.mogrify`) and kept on the connection.
- psycopg2 runs in autocommit and this module opens the transaction itself: ``BEGIN`` is put in
  front of the transaction's first statement that really goes out.
- The next statement really executed carries the kept writes in front of it; COMMIT carries
  whatever is still kept. psycopg2 uses the simple query protocol, so a multi-statement string
  is one round trip, and PostgreSQL stops at the first failing statement.

So a webhook is typically two round trips: ``BEGIN; SELECT`` (its stored answer and the call's
state) and ``UPDATE …; INSERT …; INSERT answer; COMMIT``. Order is preserved and everything is
in one transaction: a rollback (or the connection going back to the pool) drops what was kept
and rolls back the server's transaction, exactly as for writes already sent. The result of a
combined string is the one of its last statement, so reads and `rowcount` behave as if alone.
Errors of a kept write (a constraint) surface at the statement or COMMIT that sends it; webhooks
treat both the same (rescue TwiML, nothing committed).

Other backends ignore `DEFER`: SQLite is in-process, a statement costs no round trip.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, event

try:
    from psycopg2.extensions import TRANSACTION_STATUS_IDLE
except ImportError:   # the plain install has no psycopg2; `install` is then never called (db.make_engine)
    TRANSACTION_STATUS_IDLE = 0   # libpq's PQTRANS_IDLE; only DEFER is used, and other backends ignore it

#: Execution option asking for a statement to be kept and sent with the next one.
DEFER = {"ivr_defer": True}
_KEPT = "ivr.kept_writes"   # key in the pooled connection's info: list of rendered statements


def install(engine: Engine) -> None:
    """Make `DEFER` effective and let this module open/close transactions (psycopg2 engines)."""
    event.listen(engine, "connect", _autocommit)
    event.listen(engine, "do_execute", _do_execute)
    event.listen(engine, "do_execute_no_params", _do_execute_no_params)
    event.listen(engine, "do_executemany", _do_executemany)
    event.listen(engine, "commit", _commit)
    event.listen(engine, "rollback", _rollback)
    event.listen(engine.pool, "reset", _reset)


def _autocommit(dbapi_conn: Any, _record: Any) -> None:
    # psycopg2 would send BEGIN and COMMIT as round trips of their own; `_opening` and `_commit`
    # send them with other statements instead.
    dbapi_conn.autocommit = True


def _take_kept(context: Any) -> list[bytes]:
    """The kept writes of this execution's connection, removed (they are about to be sent)."""
    try:
        return context.root_connection.connection.info.pop(_KEPT, None) or []
    except NotImplementedError:   # the engine's first connect (dialect set-up) has no pool entry
        return []


def _opening(dbapi_conn: Any) -> list[bytes]:
    """``BEGIN`` when the server has no transaction open on this connection (and we manage them)."""
    if dbapi_conn.autocommit and dbapi_conn.info.transaction_status == TRANSACTION_STATUS_IDLE:
        return [b"BEGIN"]
    return []


def _do_execute(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
    """Keep a DEFER statement; send BEGIN and kept writes together with any other statement."""
    if context.execution_options.get("ivr_defer"):
        context.root_connection.connection.info.setdefault(_KEPT, []).append(
            cursor.mogrify(statement, parameters))
        return True   # handled: nothing is sent now
    parts = [*_opening(cursor.connection), *_take_kept(context)]
    if not parts:
        return False  # the dialect executes it as usual
    cursor.execute(b";\n".join([*parts, cursor.mogrify(statement, parameters)]))
    return True


def _do_execute_no_params(cursor: Any, statement: str, context: Any) -> bool:
    parts = [*_opening(cursor.connection), *_take_kept(context)]
    if not parts:
        return False
    # No parameters: the text is sent as it is (a '%' in it is not a placeholder).
    cursor.execute(b";\n".join([*parts, statement.encode()]))
    return True


def _do_executemany(cursor: Any, _statement: str, _parameters: Any, context: Any) -> bool:
    parts = [*_opening(cursor.connection), *_take_kept(context)]
    if parts:   # executemany cannot carry them: send them first, then let the dialect run it
        cursor.execute(b";\n".join(parts))
    return False


def _commit(conn: Any) -> None:
    """`commit` listener (before psycopg2's commit, a no-op in autocommit): send what is kept
    and COMMIT in one round trip; nothing at all when the transaction never reached the server."""
    kept = conn.connection.info.pop(_KEPT, None) or []
    dbapi_conn = conn.connection.dbapi_connection
    if not dbapi_conn.autocommit:
        parts = kept   # psycopg2 manages this connection's transaction and commits after us
    elif kept or dbapi_conn.info.transaction_status != TRANSACTION_STATUS_IDLE:
        parts = [*kept, b"COMMIT"]
    else:
        return
    if parts:
        # Through the Connection, so a failure (a kept write's constraint, a duplicate answer)
        # is wrapped and handled like any statement's; `_do_execute_no_params` adds BEGIN.
        conn.exec_driver_sql(b";\n".join(parts).decode(), execution_options={"no_parameters": True})


def _rollback(conn: Any) -> None:
    """`rollback` listener: drop what was kept and roll back the server's transaction."""
    if conn.invalidated:   # an invalidated connection's DBAPI connection (and transaction) are gone
        return
    conn.connection.info.pop(_KEPT, None)
    _end_open_transaction(conn.connection.dbapi_connection)


def _reset(dbapi_conn: Any, record: Any, _state: Any = None) -> None:
    """Pool `reset` listener: a connection going back to the pool keeps nothing and has no
    transaction open (psycopg2's rollback is a no-op in autocommit, so we send it)."""
    record.info.pop(_KEPT, None)
    _end_open_transaction(dbapi_conn)


def _end_open_transaction(dbapi_conn: Any) -> None:
    if dbapi_conn.autocommit and dbapi_conn.info.transaction_status != TRANSACTION_STATUS_IDLE:
        with dbapi_conn.cursor() as cursor:
            cursor.execute("ROLLBACK")


def pending(conn: Any) -> int:
    """How many writes are kept on this SQLAlchemy Connection (for tests and diagnostics)."""
    return len(conn.connection.info.get(_KEPT) or ())
