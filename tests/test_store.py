"""The call store on both backends (the `db_url` fixture runs each test on SQLite and PostgreSQL).

A bare Flask app with only the store keeps these tests independent of rules, prompts and speech.
"""
from __future__ import annotations

import dataclasses
import logging
from datetime import datetime, timedelta, timezone

import pytest
from flask import Flask
from sqlalchemy import func, select

from ivr.routing.state import CallState, Turn
from ivr.store import calls, db, history, models, replies
from ivr.store.privacy import mask_number

pytestmark = pytest.mark.db


@pytest.fixture
def store_app(db_url):
    app = Flask("store-test")
    app.config["IVR_DATABASE_URL"] = db_url
    db.init_app(app)
    yield app
    db.engine(app).dispose()


@pytest.fixture
def s(store_app):
    with store_app.app_context():
        yield db.session()


def test_ensure_call_is_idempotent_and_fills_missing_numbers(s):
    calls.add_event(s, "CA1", "status", {"status": "ringing"})  # a callback racing /voice/incoming
    calls.ensure_call(s, "CA1", "+15551234567", "+15550001111")
    calls.ensure_call(s, "CA1", "+19999999999", "")
    s.commit()
    record = history.call_record(s, "CA1")
    assert (record["from"], record["to"]) == ("+15551234567", "+15550001111")
    assert calls.caller_number(s, "CA1") == "+15551234567" and calls.caller_number(s, "CAnone") is None
    assert s.scalar(select(func.count()).select_from(models.Call)) == 1


def test_state_and_caller_are_read_together(s):
    calls.start_call(s, "CA3", "+15551234567", "+15550001111", CallState(step="confirm", department="roads"))
    calls.ensure_call(s, "CA4", "", "")   # a status callback's row: no state stored, no number
    s.commit()
    state, caller = calls.state_and_caller(s, "CA3")
    assert (state.step, state.department, caller) == ("confirm", "roads", "+15551234567")
    assert (state, caller) == (calls.load_state(s, "CA3"), calls.caller_number(s, "CA3"))
    assert calls.state_and_caller(s, "CA4") == (calls.load_state(s, "CA4"), "")
    assert calls.state_and_caller(s, "CAnone") == (None, "")


def test_bad_call_sid_is_a_clear_error(s):
    with pytest.raises(ValueError, match="CallSid"):
        calls.ensure_call(s, "", "+1", "+2")
    with pytest.raises(ValueError, match="longer than"):
        calls.load_state(s, "C" * 65)


def test_state_round_trips_through_the_database(s):
    state = CallState(step="confirm", language="es", retries=1, department="roads",
                      confidence=0.62, tried=("roads", "operator"))
    calls.ensure_call(s, "CA2", "+15551234567", "+15550001111")
    calls.save_state(s, "CA2", state)
    s.commit()
    s.expire_all()
    assert calls.load_state(s, "CA2") == state
    assert history.call_record(s, "CA2")["language"] == "es"


def test_unknown_call_has_no_state(s):
    assert calls.load_state(s, "CAnone") is None
    assert history.call_record(s, "CAnone") is None


def test_state_written_by_another_code_version_still_loads(s):
    """A deploy mid-call: stored JSON with a removed field and without a new one."""
    calls.ensure_call(s, "CA3", "", "")
    call = s.get(models.Call, "CA3")
    call.state = {"step": "ask", "asks": 2, "tried": ["roads"], "field_from_the_future": 1}
    s.commit()
    s.expire_all()
    assert calls.load_state(s, "CA3") == CallState(step="ask", asks=2, tried=("roads",))


def test_turns_events_outcome_recordings_messages_make_the_record(s):
    calls.ensure_call(s, "CA4", "+15551234567", "+15550001111")
    calls.add_turn(s, "CA4", "ask", "How can we help?", "pothole on main street", None, 0.91,
                   {"top": "roads.pothole", "explanation": "matched 'pothole'"},
                   {"action": "transfer", "reason": "confidence 0.91"})
    calls.add_event(s, "CA4", "decision", {"action": "voicemail", "reason": "busy twice"})
    calls.set_outcome(s, "CA4", "busy", department="roads")
    calls.set_outcome(s, "CA4", "voicemail", wait_s=12.5)
    calls.add_recording(s, "CA4", "https://api.twilio.com/rec/RE1", "voicemail", 14)
    calls.add_message(s, "CA4", "roads", "voicemail", "https://api.twilio.com/rec/RE1")
    calls.end_call(s, "CA4", "completed", 95.0)
    s.commit()
    record = history.call_record(s, "CA4")
    assert record["from"] == "+15551234567"
    assert record["outcome"] == "voicemail"
    assert record["outcome_detail"] == {"department": "roads", "wait_s": 12.5}
    assert [t["heard"] for t in record["turns"]] == ["pothole on main street"]
    assert [d["action"] for d in record["decisions"]] == ["transfer", "voicemail"]
    assert [e["kind"] for e in record["events"]] == ["decision", "outcome", "outcome", "status"]
    assert record["recordings"][0]["duration_s"] == 14.0
    assert record["messages"][0]["department"] == "roads"
    assert record["duration_s"] == 95.0 and record["ended"] is not None
    assert datetime.fromisoformat(record["started"]).tzinfo is not None


def test_add_turn_accepts_routing_dataclasses(s):
    @dataclasses.dataclass(frozen=True)
    class FakeDecision:
        reason: str
        state: CallState

    calls.add_turn(s, "CA5", "ask", "", None, "3", None, None,
                   FakeDecision("menu digit 3", CallState(tried=("a",))))
    s.commit()
    decision = history.call_record(s, "CA5")["turns"][0]["decision"]
    # Tuples are stored as JSON lists.
    expected = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(CallState()).items()}
    assert decision == {"reason": "menu digit 3", "state": {**expected, "tried": ["a"]}}


def test_unstorable_detail_is_a_clear_error(s):
    with pytest.raises(TypeError, match="cannot store object"):
        calls.add_event(s, "CA6", "decision", {"thing": object()})


def test_call_ending_without_outcome_is_abandoned(s):
    calls.ensure_call(s, "CA7", "+15551234567", "+15550001111")
    calls.end_call(s, "CA7", "completed", 8)
    s.commit()
    assert history.call_record(s, "CA7")["outcome"] == "abandoned"


def test_pending_turn_is_used_once(s):
    calls.ensure_call(s, "CA8", "", "")
    calls.put_pending_turn(s, "CA8", Turn(speech="trash pickup", asr_confidence=0.8))
    s.commit()
    assert calls.pending_turn(s, "CA8") == Turn(speech="trash pickup", asr_confidence=0.8)
    calls.save_state(s, "CA8", CallState(language="en"), clear_pending_turn=True)   # the webhook that used it
    s.commit()
    assert calls.pending_turn(s, "CA8") is None
    assert calls.pending_turn(s, "CAunknown") is None


def test_remembered_response_is_recalled_and_the_first_answer_wins(s):
    assert replies.recall_response(s, "CA9:ask:1") is None
    calls.ensure_call(s, "CA9", "", "")
    calls.add_turn(s, "CA9", "ask", "", "water bill", None, 0.8, None, None)
    assert replies.remember_response(s, "CA9:ask:1", "<Response>first</Response>") == "<Response>first</Response>"
    # The retry did the work again; its effects must vanish and it must serve the first answer.
    calls.add_turn(s, "CA9", "ask", "", "water bill", None, 0.8, None, None)
    assert replies.remember_response(s, "CA9:ask:1", "<Response>second</Response>") == "<Response>first</Response>"
    assert len(history.call_record(s, "CA9")["turns"]) == 1
    assert replies.recall_response(s, "CA9:ask:1") == "<Response>first</Response>"


def test_very_long_idempotency_keys_are_hashed(s):
    key = "CA10:" + "x" * 400
    replies.remember_response(s, key, "<Response/>")
    assert replies.recall_response(s, key) == "<Response/>"
    assert replies.recall_response(s, key + "y") is None


def test_old_responses_are_forgotten(s):
    replies.remember_response(s, "old", "<Response/>")
    removed = replies.forget_responses(s, datetime.now(timezone.utc) + timedelta(seconds=1))
    s.commit()
    assert removed == 1 and replies.recall_response(s, "old") is None


def test_recent_calls_newest_first_and_limit_checked(s):
    for n in range(3):
        calls.ensure_call(s, f"CAr{n}", "", "")
        s.commit()
    assert [c["sid"] for c in history.recent_calls(s, 2)] == ["CAr2", "CAr1"]
    for bad in (0, 501, "5", True):
        with pytest.raises(ValueError, match="limit"):
            history.recent_calls(s, bad)


def test_naive_datetimes_are_refused(s):
    calls.ensure_call(s, "CA11", "", "")
    s.get(models.Call, "CA11").ended_at = datetime(2025, 1, 1)
    with pytest.raises(Exception, match="naive datetime"):
        s.commit()


def test_uncommitted_writes_are_rolled_back_at_teardown(store_app, caplog):
    with caplog.at_level(logging.WARNING, logger="ivr.store.db"), store_app.app_context():
        calls.ensure_call(db.session(), "CA12", "", "")
        db.session().flush()
    assert any("uncommitted" in r.message for r in caplog.records)
    with store_app.app_context():
        assert calls.load_state(db.session(), "CA12") is None


@pytest.mark.parametrize("number, masked", [
    ("+15551234567", "+1******4567"),
    ("+44 7911 123456", "+4*******3456"),
    ("5551234567", "55****4567"),
    ("911", "*11"),
    ("Anonymous", "Anonymous"),
    ("client:alice", "client:***"),
    (None, ""),
])
def test_mask_number(number, masked):
    assert mask_number(number) == masked


def test_ping_reports_an_unreachable_database(store_app, tmp_path):
    assert db.ping(store_app) is None
    down = Flask("down")
    down.config["IVR_DATABASE_URL"] = f"sqlite:///{tmp_path}/missing-dir/ivr.sqlite3"
    db.init_app(down)  # logged, not fatal: the line must still answer calls
    assert "unable to open database" in db.ping(down)
