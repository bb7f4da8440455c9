"""write.Prepared: a hot write compiled once per engine stores exactly what ``Connection.execute``
of the same statement stores, with each engine's own bind processing (its json_serializer), on
SQLite (on the driver's cursor: ivr.store.direct) and PostgreSQL (exec_driver_sql) (`db_url`).
direct.PreparedRead: a hot read gives what ``Connection.execute`` gives.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import bindparam, event, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from ivr.routing.state import Turn
from ivr.store import db, direct, models
from ivr.store.direct import PreparedRead
from ivr.store.models import Base
from ivr.store.write import Prepared

pytestmark = pytest.mark.db
AT = datetime(2026, 3, 10, 15, 0, 0, 123456, tzinfo=timezone.utc)
EVENTS = models.Event.__table__
CALLS = models.Call.__table__


@pytest.fixture
def engine(db_url):
    engine = db.make_engine(db_url)
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(CALLS.insert(), [{"sid": sid} for sid in ("CAp1", "CAp2")])
    yield engine
    engine.dispose()


def _raw(conn, table: str, order: str) -> list[tuple]:
    """The rows as the database holds them: JSON and times as text, not decoded by SQLAlchemy."""
    columns = {"events": "call_sid, kind, CAST(detail AS TEXT), CAST(created_at AS TEXT)",
               "calls": "sid, status, CAST(state AS TEXT), CAST(updated_at AS TEXT)"}[table]
    return list(conn.exec_driver_sql(f"SELECT {columns} FROM {table} ORDER BY {order}"))


def test_stores_the_same_bytes_as_connection_execute(engine):
    detail = {"reason": 'a "quoted" café', "nested": (1, None), "turn": Turn(speech="a pothole", asr_confidence=0.5)}
    rows = [{"call_sid": "CAp1", "kind": "decision", "detail": detail, "created_at": AT},
            {"call_sid": "CAp2", "kind": "outcome", "detail": {}, "created_at": AT + timedelta(seconds=1)}]
    statement = EVENTS.insert().inline()
    prepared = Prepared(statement)
    with engine.begin() as conn:
        conn.execute(statement, rows[0])
        conn.execute(statement, rows)   # executemany
        prepared.execute(conn, rows[0])
        prepared.execute(conn, rows)
        stored = _raw(conn, "events", "id")
    assert stored[3:] == stored[:3]
    assert json.loads(stored[0][2])["turn"]["speech"] == "a pothole"   # the engine's convert.dumps


def test_an_update_with_a_constant_and_a_json_value_matches_execute(engine):
    statement = update(CALLS).where(CALLS.c.sid == bindparam("b_sid")).values(
        status="ended", state=bindparam("b_state"), updated_at=bindparam("b_at"))
    with engine.begin() as conn:
        conn.execute(statement, {"b_sid": "CAp1", "b_state": {"step": "done"}, "b_at": AT})
        Prepared(statement).execute(conn, {"b_sid": "CAp2", "b_state": {"step": "done"}, "b_at": AT})
        first, second = _raw(conn, "calls", "sid")
    assert first[1:] == second[1:]


def test_each_engine_binds_with_its_own_json_serialiser(engine, tmp_path):
    # The compilation (and its bind processors) is kept per dialect: an engine whose serialiser
    # differs must not get another engine's. Fails if the cache ignores the dialect.
    prepared = Prepared(EVENTS.insert().inline())
    row = {"call_sid": "CAp1", "kind": "k", "detail": {"b": 1, "a": 2}, "created_at": AT}
    with engine.begin() as conn:
        prepared.execute(conn, row)
    other = db.make_engine(f"sqlite:///{tmp_path / 'other.sqlite3'}")
    other.dialect._json_serializer = lambda value: json.dumps(value, sort_keys=True)
    Base.metadata.create_all(other)
    with other.begin() as conn:
        conn.execute(CALLS.insert(), {"sid": "CAp1"})
        prepared.execute(conn, row)
        assert conn.execute(text("SELECT detail FROM events")).scalar() == '{"a": 2, "b": 1}'
    with engine.begin() as conn:
        prepared.execute(conn, row)
        assert [d for (d,) in conn.exec_driver_sql("SELECT CAST(detail AS TEXT) FROM events")] == ['{"b": 1, "a": 2}'] * 2
    other.dispose()


def test_each_set_of_parameter_names_is_its_own_compilation(engine):
    prepared = Prepared(EVENTS.insert().inline())
    with engine.begin() as conn:
        prepared.execute(conn, {"call_sid": "CAp1", "kind": "a", "detail": {}, "created_at": AT})
        with pytest.raises(ValueError, match="created_at"):   # utcnow() would run in Python: refused
            prepared.execute(conn, {"call_sid": "CAp1", "kind": "b", "detail": {}})


def _error(run):
    try:
        run()
    except Exception as exc:   # noqa: BLE001 - compared below
        return type(exc), type(getattr(exc, "orig", None))
    raise AssertionError("no error")


@pytest.mark.parametrize("bad", [{"detail": {"x": object()}},   # JSON cannot hold it (TypeError)
                                 {"created_at": AT.replace(tzinfo=None)}])   # naive (models.UTCDateTime)
def test_a_value_the_binding_refuses_fails_as_with_execute(engine, bad):
    statement = EVENTS.insert().inline()
    row = {"call_sid": "CAp1", "kind": "a", "detail": {}, "created_at": AT, **bad}
    with engine.connect() as conn:
        expected = _error(lambda: conn.execute(statement, row))
        conn.rollback()
        assert _error(lambda: Prepared(statement).execute(conn, row)) == expected
        assert issubclass(expected[0], (TypeError, ValueError)) or issubclass(expected[1], (TypeError, ValueError))


def test_a_broken_constraint_is_an_integrity_error(engine):
    with engine.connect() as conn, pytest.raises(IntegrityError):
        Prepared(CALLS.insert()).execute(conn, {"sid": "CAp1", "state": {}, "outcome_detail": {},
                                                "started_at": AT, "updated_at": AT})
        conn.commit()   # PostgreSQL's pipeline reports it at the latest here


# --- on the driver's cursor (ivr.store.direct): SQLite's path; PostgreSQL keeps the engine's ---

def test_sqlite_runs_prepared_statements_on_the_driver_and_postgresql_through_the_engine(engine):
    with engine.connect() as conn:
        assert direct.installed(conn) == (engine.dialect.name == "sqlite")


@pytest.mark.parametrize("end", ["commit", "rollback"])
def test_a_write_on_a_connection_with_no_transaction_yet_is_committed_or_rolled_back_with_it(engine, end):
    # SQLAlchemy begins a transaction at a connection's first statement; so must a write sent on
    # the driver's cursor, or conn.commit() would commit nothing and the write would be lost.
    row = {"call_sid": "CAp1", "kind": "status", "detail": {"n": 1}, "created_at": AT}
    with engine.connect() as conn:
        Prepared(EVENTS.insert().inline()).execute(conn, row)
        assert conn.in_transaction()
        getattr(conn, end)()
    with engine.connect() as other:
        assert other.execute(text("SELECT count(*) FROM events")).scalar() == (1 if end == "commit" else 0)


def test_statement_listeners_are_told_of_each_prepared_write_and_read(engine):
    seen: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda _c, _cur, statement, *_r: seen.append(statement.split()[0]))
    read = PreparedRead(select(CALLS.c.state).where(CALLS.c.sid == bindparam("b_sid")))
    with engine.begin() as conn:
        Prepared(EVENTS.insert().inline()).execute(conn, {"call_sid": "CAp1", "kind": "k", "detail": {},
                                                          "created_at": AT})
        read.first(conn, {"b_sid": "CAp1"})
    assert seen == ["INSERT", "SELECT"]


def test_a_prepared_read_gives_what_execute_gives(engine):
    state = {"step": "confirm", "nested": {"words": ["a", "café"]}, "n": 1.5}
    with engine.begin() as conn:
        conn.execute(update(CALLS).where(CALLS.c.sid == "CAp1").values(state=state, from_number="+15550001111"))
    query = select(CALLS.c.state, CALLS.c.from_number, CALLS.c.pending_turn).where(CALLS.c.sid == bindparam("b_sid"))
    read = PreparedRead(query)
    with engine.connect() as conn:
        assert read.first(conn, {"b_sid": "CAp1"}) == tuple(conn.execute(query, {"b_sid": "CAp1"}).one())
        assert read.first(conn, {"b_sid": "CAp1"})[0] == state   # JSON decoded, as the engine decodes it
        assert read.first(conn, {"b_sid": "CAnone"}) is None


def test_a_broken_constraint_on_a_prepared_write_leaves_the_transaction_to_roll_back(engine):
    insert = Prepared(EVENTS.insert().inline())
    with engine.connect() as conn:
        insert.execute(conn, {"call_sid": "CAp1", "kind": "kept", "detail": {}, "created_at": AT})
        with pytest.raises(IntegrityError):
            Prepared(CALLS.insert()).execute(conn, {"sid": "CAp1", "state": {}, "outcome_detail": {},
                                                    "started_at": AT, "updated_at": AT})
            conn.commit()   # PostgreSQL's pipeline reports it at the latest here
        conn.rollback()
        insert.execute(conn, {"call_sid": "CAp2", "kind": "after", "detail": {}, "created_at": AT})
        conn.commit()
    with engine.connect() as conn:
        assert [kind for (kind,) in conn.execute(text("SELECT kind FROM events"))] == ["after"]


def test_a_connection_the_driver_reports_closed_is_invalidated_and_replaced(tmp_path):
    # SQLite's path: the engine would invalidate a connection the driver calls closed; so does
    # the driver's cursor path, and the pool opens a new one for the next checkout.
    engine = db.make_engine(f"sqlite:///{tmp_path / 'closed.sqlite3'}")
    Base.metadata.create_all(engine)
    row = {"call_sid": "CAp1", "kind": "k", "detail": {}, "created_at": AT}
    with engine.connect() as conn:
        conn.connection.dbapi_connection.close()   # gone underneath SQLAlchemy
        with pytest.raises(DBAPIError) as raised:
            Prepared(EVENTS.insert().inline()).execute(conn, row)
        assert raised.value.connection_invalidated and conn.invalidated
    with engine.begin() as conn:
        conn.execute(CALLS.insert(), {"sid": "CAp1"})
        Prepared(EVENTS.insert().inline()).execute(conn, row)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events")).scalar() == 1
    engine.dispose()
