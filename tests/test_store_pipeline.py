"""Write-behind on PostgreSQL (ivr/store/pipeline.py, psycopg 3's pipeline mode): a webhook's
writes are queued and sent with its next statement or its COMMIT, in order, in the same
transaction; SQLite runs them at once.

Each test runs on both backends (`db_url`); what is kept is only observable on PostgreSQL.
"""
from __future__ import annotations

import uuid

import pytest
from flask import Flask
from sqlalchemy import create_engine, event, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import NullPool

from ivr.routing.state import CallState
from ivr.store import calls, db, models, pipeline, replies
from conftest import store_only_app

pytestmark = pytest.mark.db
SID = "CApipel000000000000000000000000001"


@pytest.fixture
def store_app(db_url):
    app = store_only_app(db_url, "pipeline-test")
    with app.app_context():
        s = db.session()
        calls.ensure_call(s, SID, "+15551234567", "+15550001111")
        s.commit()
    yield app
    db.engine(app).dispose()


def _other_state(app: Flask) -> dict:
    """The call's state as another connection sees it (committed data only)."""
    with db.engine(app).connect() as conn:
        return conn.execute(select(models.Call.state).where(models.Call.sid == SID)).scalar_one()


def _is_postgres(app: Flask) -> bool:
    return db.engine(app).dialect.name == "postgresql"


def test_writes_are_kept_until_commit_then_visible(store_app):
    with store_app.app_context():
        s = db.session()
        calls.save_state(s, SID, CallState(step="ask", heard="pothole"))
        calls.add_event(s, SID, "decision", {"kind": "ask"})
        assert pipeline.pending(s.connection()) == (2 if _is_postgres(store_app) else 0)
        assert _other_state(store_app).get("step") != "ask"   # not committed yet
        s.commit()
    assert _other_state(store_app)["step"] == "ask"


def test_a_read_sees_the_kept_writes_before_it(store_app):
    with store_app.app_context():
        s = db.session()
        calls.add_event(s, SID, "decision", {"n": 1})
        calls.add_event(s, SID, "decision", {"n": 2})
        count = s.connection().execute(select(func.count()).select_from(models.Event)
                                       .where(models.Event.call_sid == SID)).scalar_one()
        assert count == 2
        assert pipeline.pending(s.connection()) == 0   # they went with the read
        s.rollback()


def test_rollback_drops_kept_writes_and_they_never_reach_a_later_transaction(store_app):
    with store_app.app_context():
        s = db.session()
        calls.save_state(s, SID, CallState(step="menu"))
        s.rollback()
        calls.add_event(s, SID, "decision", {"after": "rollback"})   # same pooled connection
        s.commit()
        state = calls.load_state(s, SID)
    assert state is not None and state.step != "menu"
    assert _other_state(store_app).get("step") != "menu"


def test_text_survives_quoting(store_app):
    heard = "it's 100% \"broken\"; DROP TABLE calls; -- %(x)s \\ ñ"
    with store_app.app_context():
        s = db.session()
        calls.save_state(s, SID, CallState(step="confirm", heard=heard))
        s.commit()
        assert calls.load_state(s, SID).heard == heard


def test_a_failing_kept_write_fails_the_next_statement_and_nothing_is_committed(store_app):
    with store_app.app_context():
        s = db.session()
        calls.save_state(s, SID, CallState(step="queued"))
        # An event for a call that does not exist: the foreign key refuses it, at once on SQLite,
        # with the next statement (here the answer) on PostgreSQL.
        with pytest.raises(IntegrityError):
            s.connection().execute(models.Event.__table__.insert().inline(),
                                   {"call_sid": "CAnobody", "kind": "x", "detail": {}, "created_at": models.utcnow()},
                                   execution_options=pipeline.DEFER)
            assert _is_postgres(store_app)
            replies.remember_response(s, f"{SID}:/voice/turn:1", "<Response/>")
        s.rollback()
        assert replies.recall_response(s, f"{SID}:/voice/turn:1") is None
    assert _other_state(store_app).get("step") != "queued"


def test_remember_response_sends_the_writes_with_the_answer(store_app):
    with store_app.app_context():
        s = db.session()
        calls.save_state(s, SID, CallState(step="transfer"))
        assert replies.remember_response(s, f"{SID}:/voice/turn:2", "<Response>a</Response>") == "<Response>a</Response>"
        # A duplicate: its effects are rolled back and the first answer is served.
        calls.save_state(s, SID, CallState(step="duplicate"))
        assert replies.remember_response(s, f"{SID}:/voice/turn:2", "<Response>b</Response>") == "<Response>a</Response>"
    assert _other_state(store_app)["step"] == "transfer"


def test_every_key_of_a_request_is_stored_in_one_insert_kept_for_the_commit(store_app):
    """Twilio's idempotency token is a second key of the same answer: one INSERT, one commit."""
    sent: list[str] = []
    event.listen(db.engine(store_app), "before_cursor_execute", lambda _c, _cur, text, *_r: sent.append(text))
    with store_app.app_context():
        s = db.session()
        calls.save_state(s, SID, CallState(step="transfer"))
        kept: list[int] = []
        event.listen(s, "before_commit", lambda s: kept.append(pipeline.pending(s.connection())))
        start = len(sent)
        first = replies.remember_response(s, f"{SID}:/voice/turn:3", "<Response>a</Response>", also=["token:t3"])
        assert first == "<Response>a</Response>"
        assert [text.split()[2] for text in sent[start:]] == ["idempotent_responses"]
        # On PostgreSQL the UPDATE and both rows are still queued at the COMMIT, which sends them.
        assert len(kept) == 1
        assert kept[0] >= 3 if _is_postgres(store_app) else kept[0] == 0
        assert replies.recall_response(s, "token:t3") == first == replies.recall_response(s, f"{SID}:/voice/turn:3")
        # A retry known by either key is a duplicate: its effects are rolled back, the first answer served.
        calls.save_state(s, SID, CallState(step="duplicate"))
        assert replies.remember_response(s, f"{SID}:/voice/turn:3", "<Response>b</Response>", also=["token:t9"]) == first
        calls.save_state(s, SID, CallState(step="duplicate"))
        assert replies.remember_response(s, f"{SID}:/voice/turn:9", "<Response>c</Response>", also=["token:t3"]) == first
        assert replies.recall_response(s, "token:t9") is None and replies.recall_response(s, f"{SID}:/voice/turn:9") is None
    assert _other_state(store_app)["step"] == "transfer"


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)   # SQLite has no server to lose
def test_a_pooled_connection_killed_by_the_server_is_replaced_without_failing_the_webhook(db_url):
    """There is no pre-ping: the webhook's first read finds the dead connection and retries once."""
    name = f"ivr-pipeline-test-{uuid.uuid4().hex[:12]}"
    store_app = store_only_app(f"{db_url}&application_name={name}", "pipeline-test")
    with store_app.app_context():
        s = db.session()
        calls.ensure_call(s, SID, "", "")
        pid = s.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        s.commit()   # the connection goes back to the pool
        killer = create_engine(db.engine(store_app).url, poolclass=NullPool)   # not from the pool
        with killer.connect() as other:   # every pooled connection of this app: the server restarted
            killed = other.exec_driver_sql(f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                           f"WHERE application_name = '{name}' AND pid <> pg_backend_pid()")
            assert killed.scalar_one() >= 1
        killer.dispose()
        rollbacks = []
        event.listen(s, "after_rollback", lambda *_: rollbacks.append(1))
        body, state = calls.recall_with_state(s, [f"{SID}:/voice/turn:9"], SID)
        assert body is None and state is not None
        assert rollbacks, "the dead connection was not noticed: nothing was retried"
        assert s.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar_one() != pid
        assert db.ping(store_app) is None
    db.engine(store_app).dispose()


def test_a_streamed_read_works_in_pipeline_mode(store_app):
    """psycopg's server-side cursors do not work in pipeline mode, so `yield_per` (the console's
    feedback export) is served from a client-side result on PostgreSQL, as on SQLite."""
    with store_app.app_context():
        s = db.session()
        for n in range(7):
            calls.add_event(s, SID, "decision", {"n": n})
        s.commit()
        stmt = select(models.Event.detail).where(models.Event.call_sid == SID).order_by(models.Event.id)
        seen = [detail["n"] for detail in s.scalars(stmt.execution_options(yield_per=3))]
    assert seen == list(range(7))


def test_the_connection_is_usable_after_a_deferred_write_fails_wherever_its_error_surfaces(store_app):
    """psycopg reports a queued write's error at whichever later execute finds its result
    already arrived; the statements queued behind it are aborted. The transaction is rolled
    back there and then, so the next read on the connection works."""
    import time

    with store_app.app_context():
        s = db.session()
        calls.load_state(s, SID)   # the transaction is open (psycopg's BEGIN is its own round trip)
        with pytest.raises(IntegrityError):
            s.connection().execute(models.Event.__table__.insert().inline(),
                                   {"call_sid": "CAnobody", "kind": "x", "detail": {}, "created_at": models.utcnow()},
                                   execution_options=pipeline.DEFER)
            time.sleep(0.3)   # the server's answer (the foreign key error) is waiting on the socket
            calls.add_event(s, SID, "decision", {"after": "the failed write"})   # deferred too
            replies.remember_response(s, f"{SID}:/voice/turn:7", "<Response/>")
        s.rollback()
        assert calls.load_state(s, SID) is not None
        assert replies.recall_response(s, f"{SID}:/voice/turn:7") is None
