"""The store's one write path: a write is a SQLAlchemy Core statement on the request session's
connection, in its transaction. Nothing in the store commits; the webhook (or CLI command) does,
once, so a request's effects and its stored answer become durable together.

Why Core and not the ORM's unit of work: webhooks write a handful of known rows and read nothing
back; Core skips the identity map and flush (measured ~1 ms less CPU per webhook on SQLite), and
one path means one set of rules for locking (SQLite's write turn is taken at the first write,
ivr.store.sqlite) and batching (ivr.store.pipeline). ORM models stay as the table definitions
and for reads that want objects.

A webhook's hot writes are `Prepared`: the same Core statements, compiled once per engine and
run on the driver's cursor on SQLite (`direct`), with ``Connection.exec_driver_sql`` elsewhere.
"""
from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import UpdateBase

from ivr.store import direct

#: `Session.info` key: this transaction wrote something (teardown warns when it was not committed).
WROTE = "wrote"


def connection(s: Session) -> Connection:
    """The session's connection, for a write in its transaction (flagged as written)."""
    s.info[WROTE] = True
    return s.connection()


class Prepared:
    """A Core INSERT/UPDATE (no RETURNING) that a webhook runs every time: compiled by SQLAlchemy
    once per engine dialect and set of parameter names, then run with ``exec_driver_sql``.

    `Connection.execute` redoes per statement what never changes for these statements (cache
    lookup, compiled-parameter set-up, CRUD and result checks): ~8 us a statement (measured on
    SQLite, an event INSERT: 21.5 -> 13.2 us). The SQL is SQLAlchemy's own compilation for the
    engine's dialect, and every value goes through the bind processor SQLAlchemy would use (the
    engine's json_serializer, `models.UTCDateTime`, psycopg's JSON wrapper), so the statement
    sent and the bytes stored are the same. Execution options (`pipeline.DEFER`), the dialect's
    execute events (`sqlite.WriteTurn`, `pipeline`) and error handling are the engine's as usual.

    Only statements whose every value is a parameter or a constant qualify: no Python-side
    column defaults run at execution (pass such columns, e.g. ``updated_at``, explicitly).
    """

    def __init__(self, statement: UpdateBase) -> None:
        self.statement = statement
        # Per dialect (each engine has its own, with its own json_serializer), then per names.
        self._compiled: weakref.WeakKeyDictionary[Dialect, dict[tuple[str, ...], _Compiled]] = \
            weakref.WeakKeyDictionary()

    def execute(self, conn: Connection, params: Mapping[str, Any] | Sequence[Mapping[str, Any]],
                execution_options: Mapping[str, Any] | None = None) -> None:
        """Run the statement with `params` (one row's, or a list of rows' with the same names:
        an executemany) on `conn`: on the driver's cursor where the engine allows it (SQLite,
        `direct`), else with ``exec_driver_sql`` and `execution_options`. A value the bind
        processor refuses raises StatementError wrapping its error, as ``conn.execute`` does."""
        rows = [params] if isinstance(params, Mapping) else params
        compiled = self.compiled(conn.dialect, tuple(rows[0]))
        try:
            bound = [compiled.bind(row) for row in rows]
        except Exception as exc:   # as Connection.execute reports a failed bind
            raise StatementError(str(exc), compiled.sql, params, exc) from exc
        if direct.installed(conn):
            direct.execute(conn, compiled.sql, bound).close()
        else:
            conn.exec_driver_sql(compiled.sql, bound[0] if len(bound) == 1 else bound, execution_options)

    def compiled(self, dialect: Dialect, names: tuple[str, ...]) -> _Compiled:
        """The statement compiled for `dialect` with parameters `names` (compiled on first use)."""
        by_names = self._compiled.get(dialect)
        if by_names is None:
            by_names = self._compiled[dialect] = {}
        found = by_names.get(names)
        if found is None:
            found = by_names[names] = _Compiled(self.statement, dialect, names)
        return found


class _Compiled:
    """One compilation of a `Prepared` statement: its SQL and how to bind a row of parameters."""

    def __init__(self, statement: UpdateBase, dialect: Dialect, names: tuple[str, ...]) -> None:
        compiled: Any = statement.compile(dialect=dialect, column_keys=list(names))
        if (compiled.post_compile_params or compiled.literal_execute_params or compiled.escaped_bind_names
                or compiled.implicit_returning or compiled.effective_returning):
            raise ValueError(f"not a plain statement to prepare (expanding parameters or RETURNING): "
                             f"{compiled.string}")
        # Columns left to their defaults: a constant one (status="in-progress") is bound once;
        # one computed in Python at each execution (utcnow) would not run here, so it is refused.
        defaults: dict[str, Any] = {}
        for column in (*compiled.insert_prefetch, *compiled.update_prefetch):
            default = column.default if column in compiled.insert_prefetch else column.onupdate
            if default is None or not default.is_scalar:
                raise ValueError(f"{column} gets its value from Python at execution: pass it as a parameter")
            defaults[column.key] = default.arg
        binds = {name: bind for bind, name in compiled.bind_names.items()}
        order = compiled.positiontup if compiled.positional else list(binds)
        # Per placeholder: (parameter name or None, bind processor or None, constant value).
        slots: list[tuple[str | None, Any, Any]] = []
        for name in order:
            bind = binds[name]
            # What SQLAlchemy binds with: the type's processor for this dialect (TypeDecorators too).
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            key = bind.key if bind.key in names else name if name in names else None
            if key is not None:
                slots.append((key, process, None))
            elif bind.key in defaults:
                value = defaults.pop(bind.key)
                slots.append((None, None, process(value) if process else value))
            elif bind.required:
                raise ValueError(f"parameter {name!r} is required by {compiled.string}")
            else:   # a literal's or a scalar default's value, bound once
                value = bind.effective_value
                slots.append((None, None, process(value) if process else value))
        if defaults:
            raise ValueError(f"defaults {sorted(defaults)} not found among the parameters of {compiled.string}")
        self.sql: str = compiled.string
        self.names = tuple(order)
        self._slots = slots
        self._positional = bool(compiled.positional)

    def bind(self, row: Mapping[str, Any]) -> Any:
        """`row`'s values as the driver takes them (a tuple, or a dict for named placeholders)."""
        values = [(process(row[key]) if process else row[key]) if key is not None else value
                  for key, process, value in self._slots]
        return tuple(values) if self._positional else dict(zip(self.names, values))
