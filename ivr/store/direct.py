"""A webhook's hot statements on the driver's own cursor (SQLite), inside the request's transaction.

Every webhook reads its call (`calls.recall_with_state`) and writes a few rows (`write.Prepared`).
Through ``Connection.execute`` / ``exec_driver_sql`` each statement also pays for SQLAlchemy's
execution machinery: an execution context, the dialect's execute events, a cursor result with its
metadata. On SQLite, SQLAlchemy's own frames were about 30 % of a webhook's time inside the app
(py-spy on bench/webhook_cpu.py; SQLite's own calls excluded), three times what SQLite spent; the
per-statement part of that is what this module removes (in-process 0.86 → 0.76 ms per webhook,
docs/operations.md). The Session's begin and commit remain.

So on SQLite the statements compiled once per engine (`write.Prepared`, `PreparedRead`) run on
the DBAPI connection under the same SQLAlchemy ``Connection``, which still owns the transaction:
the Session begins, commits and rolls back as before, ORM writes in the same request share it, and
the pool's check-in gives SQLite's write turn back (`sqlite.WriteTurn`). What SQLAlchemy did per
statement and the store relies on is done here too:
- the transaction is begun if the Connection has none yet (SQLAlchemy's autobegin), so a later
  ``commit()`` commits these writes;
- SQLite's write turn is taken before the transaction's first write (``BEGIN IMMEDIATE``);
- driver errors are raised as SQLAlchemy's (``IntegrityError`` …), with the statement;
- ``before_cursor_execute`` listeners (statement traces in tests and benches) are told of each
  statement, with no execution context.

PostgreSQL keeps the engine's path: its writes wait in psycopg's pipeline (`pipeline`), which
hooks into that machinery, and there a round trip costs more than the machinery does.
"""
from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import Select

#: Before a write on a DBAPI connection: (DBAPI connection, SQL, the pool entry's record_info).
BeforeWrite = Callable[[Any, str, dict[str, Any]], None]

#: Engines (by dialect: each engine has its own) whose hot statements run on the driver's cursor,
#: with what runs before a write (SQLite's write turn), if anything.
_ENGINES: weakref.WeakKeyDictionary[Dialect, BeforeWrite | None] = weakref.WeakKeyDictionary()


def install(engine: Engine, before_write: BeforeWrite | None = None) -> None:
    """Run `engine`'s prepared statements on the driver's cursor, calling `before_write` before
    each write (it begins the transaction the way the engine's own execute events would)."""
    _ENGINES[engine.dialect] = before_write


def installed(conn: Connection) -> bool:
    """True when `conn`'s engine runs prepared statements on the driver's cursor."""
    return conn.dialect in _ENGINES


def execute(conn: Connection, sql: str, rows: Sequence[Any], *, write: bool = True) -> Any:
    """Run `sql` with each of `rows` (driver-ready parameters: one row, or several as an
    executemany) on `conn`'s DBAPI connection, in `conn`'s transaction. Returns the DBAPI cursor
    (still open: fetch from it, then close it)."""
    if not conn.in_transaction():
        conn.begin()   # as SQLAlchemy autobegins: `conn.commit()` must commit what runs here
    proxied = conn.connection   # the pool's entry: the DBAPI connection and its record_info
    dbapi_conn = proxied.dbapi_connection
    before_write = _ENGINES.get(conn.dialect)
    many = len(rows) > 1
    params = rows if many else rows[0]
    cursor = None
    try:
        if write and before_write is not None:
            before_write(dbapi_conn, sql, proxied.record_info)
        cursor = dbapi_conn.cursor()
        for listener in conn.dispatch.before_cursor_execute:
            listener(conn, cursor, sql, params, None, many)
        if many:
            cursor.executemany(sql, params)
        else:
            cursor.execute(sql, params)
    except conn.dialect.loaded_dbapi.Error as exc:
        # As the engine would: a connection the driver reports as gone is invalidated (the pool
        # replaces it), and the error is SQLAlchemy's, carrying the statement.
        gone = conn.dialect.is_disconnect(exc, dbapi_conn, cursor)
        _close(cursor)
        if gone:
            conn.invalidate(exc)
        raise DBAPIError.instance(sql, params, exc, conn.dialect.loaded_dbapi.Error,
                                  hide_parameters=conn.engine.hide_parameters, connection_invalidated=gone,
                                  dialect=conn.dialect, ismulti=many) from exc
    except BaseException:
        _close(cursor)
        raise
    return cursor


def _close(cursor: Any) -> None:
    if cursor is not None:
        try:
            cursor.close()
        except Exception:   # noqa: BLE001 - the error being raised is the one that matters
            pass


class PreparedRead:
    """A SELECT a webhook runs every time, compiled once per engine: on an engine with `install`
    it runs on the driver's cursor and its values go through the result processors SQLAlchemy
    would apply (JSON decoding …); elsewhere through ``Connection.execute`` as usual."""

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement
        self._compiled: weakref.WeakKeyDictionary[Dialect, _CompiledRead] = weakref.WeakKeyDictionary()

    def first(self, conn: Connection, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The first row for `params` (None when there is none), its values as Python objects."""
        if not installed(conn):
            row = conn.execute(self.statement, params).first()
            return tuple(row) if row is not None else None
        compiled = self._compiled.get(conn.dialect)
        if compiled is None:
            compiled = self._compiled[conn.dialect] = _CompiledRead(self.statement, conn.dialect)
        cursor = execute(conn, compiled.sql, [compiled.bind(params)], write=False)
        try:
            raw = cursor.fetchone()
        finally:
            cursor.close()
        if raw is None:
            return None
        return tuple(value if process is None or value is None else process(value)
                     for value, process in zip(raw, compiled.processors))


class _CompiledRead:
    def __init__(self, statement: Select[Any], dialect: Dialect) -> None:
        compiled: Any = statement.compile(dialect=dialect)
        if compiled.post_compile_params or compiled.literal_execute_params or compiled.escaped_bind_names:
            raise ValueError(f"not a plain query to prepare (expanding parameters): {compiled.string}")
        self.sql: str = compiled.string
        binds = {name: bind for bind, name in compiled.bind_names.items()}
        self.names = tuple(compiled.positiontup if compiled.positional else binds)
        self._keys = [binds[name].key for name in self.names]
        self._process = [binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in self.names]
        self._positional = bool(compiled.positional)
        self.processors = [column.type.dialect_impl(dialect).result_processor(dialect, None)
                           for column in statement.selected_columns]

    def bind(self, params: Mapping[str, Any]) -> Any:
        values = [process(params[key]) if process else params[key] for key, process in zip(self._keys, self._process)]
        return tuple(values) if self._positional else dict(zip(self.names, values))
