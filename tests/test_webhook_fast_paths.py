"""The shortcuts that make a webhook cheap must answer exactly what the slow paths answered.

Store shortcuts run on SQLite and PostgreSQL (`db_url`); the hints cache and the signature
fast path use the ordinary test app.
"""
from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest
from flask import Flask
from twilio.request_validator import RequestValidator

from ivr import prompts
from ivr.prompts import serving
from ivr.prompts.cache import PromptAudio
from ivr.routing.actions import Transfer, Welcome
from ivr.routing.state import CallState, Decision
from ivr.store import calls, db, history, models, replies
from ivr.telephony.twiml import RenderContext, prompt_plan, render, speech_hints
from ivr.web.voice import conversation
from conftest import PUBLIC_URL, TEST_AUTH_TOKEN, store_only_app
from stub_voice import Renderer


@pytest.fixture
def s(db_url):
    app = store_only_app(db_url, "fast-path-test")
    with app.app_context():
        yield db.session()
    db.engine(app).dispose()


def test_recall_with_state_is_recall_plus_load_state(s):
    assert calls.recall_with_state(s, ["CAf1:/voice/turn:1::"], "CAf1") == (None, None)
    calls.ensure_call(s, "CAf1", "+15551234567", "+15550001111")
    state = CallState(step="confirm", language="es", tried=("roads",))
    calls.save_state(s, "CAf1", state)
    replies.remember_response(s, "token:abc", "<Response>first</Response>")
    # The first key with an answer wins, whichever position it has.
    assert calls.recall_with_state(s, ["CAf1:/voice/turn:1::", "token:abc"], "CAf1") == \
        ("<Response>first</Response>", state)
    assert calls.recall_with_state(s, ["CAf1:/voice/turn:2::"], "CAf1") == (None, state)
    with pytest.raises(ValueError, match="idempotency keys"):
        calls.recall_with_state(s, [], "CAf1")


def test_ensure_call_is_idempotent_and_fills_only_missing_numbers(s):
    calls.add_event(s, "CAf2", "status", {"status": "ringing"})   # a callback came first
    s.commit()
    s.expunge_all()
    calls.ensure_call(s, "CAf2", "+15551234567", "+15550001111")
    calls.ensure_call(s, "CAf2", "+19999999999", "")
    s.commit()
    record = history.call_record(s, "CAf2")
    assert (record["from"], record["to"]) == ("+15551234567", "+15550001111")
    assert calls.load_state(s, "CAf2") == CallState()


def test_a_call_created_in_a_rolled_back_transaction_is_created_again(s):
    calls.ensure_call(s, "CAf3", "", "")
    s.rollback()
    # The writer must not trust that the call exists: the rollback removed it.
    calls.add_turn(s, "CAf3", "ask", "", "pothole", None, 0.9, None, None)
    calls.save_state(s, "CAf3", CallState(step="ask"))
    s.commit()
    assert [t["heard"] for t in history.call_record(s, "CAf3")["turns"]] == ["pothole"]
    assert calls.load_state(s, "CAf3") == CallState(step="ask")


def test_an_abandoned_call_records_the_step_it_was_at(s):
    calls.ensure_call(s, "CAf4", "+15551234567", "")
    calls.save_state(s, "CAf4", CallState(step="ask", language="es"))
    calls.end_call(s, "CAf4", "completed", 12)
    s.commit()
    record = history.call_record(s, "CAf4")
    assert record["outcome"] == "abandoned" and record["outcome_detail"] == {"at_step": "ask"}
    assert record["language"] == "es"


def test_outcome_and_status_events_keep_their_order(s):
    calls.ensure_call(s, "CAf5", "", "")
    calls.save_state(s, "CAf5", CallState(step="confirm"))
    s.commit()
    s.expunge_all()
    calls.set_outcome(s, "CAf5", "queued", department="roads")
    calls.add_event(s, "CAf5", "queue", {"result": "bridged"})
    calls.end_call(s, "CAf5", "completed", 30)
    s.commit()
    record = history.call_record(s, "CAf5")
    assert [e["kind"] for e in record["events"]] == ["outcome", "queue", "status"]
    assert record["outcome"] == "queued" and record["duration_s"] == 30.0
    assert s.get(models.Call, "CAf5").status == "completed"


def test_hints_are_computed_once_per_rules_version(app):
    with app.app_context():
        rules = conversation.rules()
        first = conversation.hints_for(rules, "en", "ask")
        expected = speech_hints(list(rules.emergency.phrases.get("en", ()))[:30] +
                                [p for i in rules.intents for p in i.keywords.get("en", ())])
        assert first == expected
        assert conversation.hints_for(rules, "en", "menu") is first   # same kind of step: cached
        assert "English" in conversation.hints_for(rules, "en", "welcome")
        assert conversation.hints_for(rules, "en", "confirm").startswith("yes, no")
        fewer = dataclasses.replace(rules, intents=rules.intents[:1])   # a reloaded, smaller file
        assert conversation.hints_for(fewer, "en", "ask") != first


def _prompt_app(tmp_path):
    """A bare app serving the shipped prompts from an empty audio cache in `tmp_path`, and that cache."""
    app = Flask("twiml-reuse-test", instance_path=str(tmp_path / "instance"))
    app.config.update({"TESTING": True, "IVR_PUBLIC_URL": PUBLIC_URL, "IVR_PROMPT_CACHE_DIR": str(tmp_path / "cache"),
                       "IVR_PROMPTS_DIR": str(Path(__file__).resolve().parent.parent / "prompts")})
    prompts.init_app(app)
    store = app.extensions[serving.AUDIO_EXTENSION] = PromptAudio(tmp_path / "cache", Renderer().speakers())
    return app, store


def test_rendered_twiml_is_reused_only_while_every_prompt_is_a_file_on_disk(tmp_path):
    app, store = _prompt_app(tmp_path)
    welcome = Decision(Welcome("Dial 911 in an emergency."), CallState(step="welcome", seq=1), "call started")
    ctx = RenderContext(call_sid="CAreuse1", speak=prompts.speak, has_audio=prompts.has_audio, public_url=PUBLIC_URL)
    with app.test_request_context():
        first = conversation.render_text(welcome, ctx)
        assert "?say=" in first   # not on disk yet: render-on-fetch URLs, renders started, nothing kept
        store.wait_idle()
        on_disk = conversation.render_text(welcome, ctx)
        assert "?say=" not in on_disk and on_disk == str(render(welcome, ctx))
        assert conversation.render_text(welcome, ctx) is on_disk   # every prompt on disk: kept
        assert conversation.render_text(dataclasses.replace(welcome, state=CallState(step="welcome", seq=2)),
                                        ctx) != on_disk   # another step number: other action URLs
        for wav in (tmp_path / "cache").glob("*.wav"):
            wav.unlink()
        store._seen.clear()   # the on-disk trust has run out (SEEN_FOR_S)
        again = conversation.render_text(welcome, ctx)
        assert again is not on_disk and "?say=" in again   # files gone: rendered anew, renders restarted
        store.wait_idle()
        asked = conversation.asked_text(welcome.action, "en")
        assert asked == " ".join(prompts.text(key, "en", **values) for key, values in prompt_plan(welcome.action))
        assert conversation.asked_text(welcome.action, "en") is asked
        transfer = Decision(Transfer("roads", "Roads", "+15550001111"), CallState(step="routed", seq=3), "routed")
        conversation.render_text(transfer, ctx)
        store.wait_idle()
        dialled = conversation.render_text(transfer, ctx)
        assert "CAreuse1" in dialled and "?say=" not in dialled and dialled == str(render(transfer, ctx))
        other = dataclasses.replace(ctx, call_sid="CAreuse2")
        # The agent's whisper URL names each call: a kept text gets this call's sid.
        assert conversation.render_text(transfer, other) == str(render(transfer, other))
        assert "CAreuse1" not in conversation.render_text(transfer, other)


@pytest.mark.parametrize("signed_url", [
    f"{PUBLIC_URL}/voice/incoming",        # what Twilio normally signs: one HMAC suffices
    "https://ivr.example.test:443/voice/incoming",   # the port variant `validate` also accepts
])
def test_signature_variants_twilio_sends_are_accepted(client, signed_url):
    params = {"CallSid": "CAf6", "From": "+15551234567", "To": "+15550001111"}
    signature = RequestValidator(TEST_AUTH_TOKEN).compute_signature(signed_url, params)
    ok = client.post("/voice/incoming", data=params, headers={"X-Twilio-Signature": signature},
                     base_url="https://ivr.example.test")
    assert ok.status_code == 200 and ok.mimetype == "text/xml"
    forged = client.post("/voice/incoming", data={**params, "From": "+15550000000"},
                         headers={"X-Twilio-Signature": signature}, base_url="https://ivr.example.test")
    assert forged.status_code == 403


@pytest.mark.parametrize("ending", ["commit", "rollback", "teardown"])
def test_sqlite_write_lock_is_released_when_a_transaction_ends(tmp_path, ending):
    app = store_only_app(f"sqlite:///{tmp_path / 'ivr.sqlite3'}", "write-lock-test")
    with app.app_context():
        calls.ensure_call(db.session(), "CAw1", "", "")
        db.session().commit()
        calls.add_event(db.session(), "CAw1", "status", {"status": "ringing"})
        if ending == "commit":
            db.session().commit()
        elif ending == "rollback":
            db.session().rollback()
    # Hold the connection that wrote, so the next writer needs SQLite's lock on another one.
    held = db.engine(app).connect()
    failures: list[Exception] = []

    def write_elsewhere() -> None:
        try:
            with app.app_context():
                calls.add_event(db.session(), "CAw1", "status", {"status": "in-progress"})
                db.session().commit()
        except Exception as exc:  # noqa: BLE001 - reported by the test thread
            failures.append(exc)

    other = threading.Thread(target=write_elsewhere)
    other.start()
    other.join()
    held.close()
    assert failures == []
    with app.app_context():
        statuses = [e["detail"]["status"] for e in history.call_record(db.session(), "CAw1")["events"]]
    assert statuses == (["ringing"] if ending == "commit" else []) + ["in-progress"]
    db.engine(app).dispose()


def test_wal_checkpoint_runs_after_the_response_not_in_a_commit(tmp_path):
    from flask import Response

    from ivr.store import sqlite

    app = store_only_app(f"sqlite:///{tmp_path / 'ivr.sqlite3'}", "checkpoint-test")
    engine = db.engine(app)
    with engine.connect() as conn:   # SQLite's own checkpoint is only a distant safety net
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == sqlite.AUTOCHECKPOINT_PAGES
    with app.app_context():
        for n in range(50):
            calls.add_event(db.session(), "CAcp", "status", {"n": n})
            db.session().commit()
    checkpointer = sqlite.Checkpointer(engine, every_s=3600)
    assert checkpointer.after_request(Response("x"))._on_close == []   # not due yet
    checkpointer.due = 0
    response = checkpointer.after_request(Response("x"))
    assert response._on_close == [checkpointer.checkpoint]
    database = tmp_path / "ivr.sqlite3"
    before = database.stat().st_size
    response.close()   # what the WSGI server does once the body is sent
    assert database.stat().st_size > before   # the events moved from the WAL into the database
    engine.dispose()


def test_hold_twiml_is_reused_only_while_every_prompt_is_a_file_on_disk(tmp_path):
    """/voice/queue-wait's document goes through the same `kept_text` as the conversation's."""
    from ivr.telephony.twiml import render_queue_wait

    app, store = _prompt_app(tmp_path)
    ctx = RenderContext(call_sid="", speak=prompts.speak, public_url=PUBLIC_URL)

    def hold(position: int) -> str:
        return conversation.kept_text(("queue-wait", "en", position, 2, PUBLIC_URL), ctx,
                                      lambda kept: str(render_queue_wait(kept, "en", position, 2)))

    with app.test_request_context():
        assert "?say=" in hold(1)   # not on disk yet: nothing kept
        store.wait_idle()
        on_disk = hold(1)
        assert "?say=" not in on_disk and on_disk == str(render_queue_wait(ctx, "en", 1, 2))
        assert hold(1) is on_disk
        assert hold(3) != on_disk   # another position: other words
        for wav in (tmp_path / "cache").glob("*.wav"):
            wav.unlink()
        store._seen.clear()
        assert "?say=" in hold(1)   # files gone: rendered anew
        store.wait_idle()
