"""How a voice webhook writes: every read and all rendering before its first write, then its writes
back to back (SQLite's write turn and PostgreSQL's row lock are held from the first write to the
commit), and one UPDATE of the call's row whatever the webhook records (state, outcome, a used
parked turn). On SQLite and PostgreSQL (`db_url`).
"""
from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest
from sqlalchemy import event, func, select

from conftest import SettableClock, simulated_call, store_only_app
from ivr.routing.state import CallState, Turn
from ivr.store import calls, db, history, models
from ivr.web.voice import conversation

pytestmark = pytest.mark.db
# Tuesday 10 March 2026, 10:00 in Chicago: the city is open.
OPEN = datetime(2026, 3, 10, 15, 0, tzinfo=timezone.utc)
_WRITE = re.compile(r"\s*(INSERT|UPDATE|DELETE)\b", re.IGNORECASE)


class Statements:
    """The SQL statements an engine runs, as they are sent (deferred PostgreSQL writes included)."""

    def __init__(self, engine) -> None:
        self.seen: list[str] = []
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn, _cursor, statement, *_rest) -> None:
        self.seen.append(statement)

    def since(self, start: int) -> list[str]:
        return [" ".join(text.split()[:3]) for text in self.seen[start:]]


@pytest.fixture
def store(db_url):
    app = store_only_app(db_url, "webhook-writes-test")
    with app.app_context():
        yield db.session(), Statements(db.engine(app))
    db.engine(app).dispose()


def test_state_and_outcomes_are_one_update_with_the_details_merged_by_the_database(store):
    s, statements = store
    calls.ensure_call(s, "CAw1", "+15551234567", "+15550001111")
    calls.set_outcome(s, "CAw1", "queued", department="roads", wait_s=3)
    s.commit()
    start = len(statements.seen)
    state = CallState(step="done", language="es", department="parks")
    calls.save_state(s, "CAw1", state, [
        ("reported", {"case": "311-1", "note": 'a "quoted" café', "nested": {"a": [1, 2]}}),
        ("operator", {"department": None, "ratio": 0.5, "flag": True})])
    sent = statements.since(start)
    assert [text for text in sent if text.startswith("UPDATE")] == ["UPDATE calls SET"]
    assert not [text for text in sent if text.startswith("SELECT")]   # no read of the row first
    s.commit()
    record = history.call_record(s, "CAw1")
    assert record["outcome"] == "operator"
    # Like dict.update: later keys win, a None is kept as a value, earlier keys stay.
    assert record["outcome_detail"] == {"department": None, "wait_s": 3, "case": "311-1",
                                        "note": 'a "quoted" café', "nested": {"a": [1, 2]},
                                        "ratio": 0.5, "flag": True}
    assert [e["detail"]["outcome"] for e in record["events"] if e["kind"] == "outcome"] == \
        ["queued", "reported", "operator"]
    assert calls.load_state(s, "CAw1") == state
    assert s.get(models.Call, "CAw1").language == "es"


def test_a_state_is_stored_as_its_json_round_trip_would_store_it():
    import dataclasses

    from ivr.store.convert import jsonable, state_from_dict, state_to_dict

    full = CallState(step="report_done", language="es", retries=2, asks=1, menu_path="21", department="roads",
                     intent="pothole", heard="un bache", confidence=0.75, tried=("roads", "parks"), seq=7,
                     prompt="¿Algo más?", offers=("report", "callback"), location="", case="1234567",
                     can_text=True, alerts_heard=(3, 4), alert_then="route")
    assert [f.name for f in dataclasses.fields(full) if getattr(full, f.name) == f.default] == []   # every field set
    for state in (full, CallState()):
        assert state_to_dict(state) == jsonable(dataclasses.asdict(state))
        assert state_from_dict(state_to_dict(state)) == state


def test_a_decision_is_stored_as_asdict_of_its_action_would_store_it():
    import dataclasses

    from ivr.routing import actions
    from ivr.routing.state import Decision
    from ivr.store.convert import jsonable

    examples = [actions.Welcome("Dial 911."), actions.Ask(reprompt="no_input"),
                actions.Confirm("roads", "pothole", "a pothole"), actions.Menu("2", (("1", "Roads"), ("2", "Parks"))),
                actions.Transfer("roads", "Roads", "+15550001111"), actions.Queue("roads", "Roads", "roads-q"),
                actions.Operator("operator", "+15550000000"), actions.Voicemail("roads", "Roads"),
                actions.AfterHours("roads", "Roads", "8 to 5", then="callback"),
                actions.Emergency("Dial 911.", "+15559110000"), actions.Callback("roads", done=True),
                actions.Goodbye(), actions.ReportOffer("roads", "Roads", "8 to 5", ("report", "voicemail")),
                actions.ReportAsk("location", (("1", "Main"),)),
                actions.FileReport("POT", "pothole", "roads", "a hole", None),
                actions.ReadCase("1234567", "1 2 3 4 5 6 7", "a pothole", first=True, can_text=True),
                actions.TextCase("1234567", "pothole"), actions.AlertNotice(3, "water", "Main break.", True),
                actions.Subscribe("water", "Water")]
    assert {type(a) for a in examples} == set(actions.Action.__subclasses__())   # every kind of action
    for action in examples:
        described = conversation.describe(Decision(action, CallState(step="ask"), "why"))
        assert jsonable(described) == jsonable({"kind": action.kind, "reason": "why",
                                                "action": dataclasses.asdict(action), "step": "ask"})


def test_an_outcome_for_a_call_not_seen_yet_creates_it(store):
    s, _statements = store
    calls.set_outcome(s, "CAw2", "voicemail", department="roads")
    s.commit()
    assert history.call_record(s, "CAw2")["outcome_detail"] == {"department": "roads"}


def test_ending_a_call_is_one_update_and_no_read_and_keeps_an_outcome_already_there(store):
    s, statements = store
    calls.ensure_call(s, "CAw3", "", "")
    calls.save_state(s, "CAw3", CallState(step="ask"), [("transferred", {"department": "roads"})])
    calls.ensure_call(s, "CAw4", "", "")
    calls.save_state(s, "CAw4", CallState(step="confirm"))
    s.commit()
    calls.ensure_call(s, "CAw8", "", "")   # never got a state: abandoned at the first step
    s.commit()
    start = len(statements.seen)
    calls.end_call(s, "CAw3", "completed", 40)
    calls.end_call(s, "CAw4", "completed", 9)
    calls.end_call(s, "CAw8", "in-progress")   # not an end: no outcome
    sent = statements.since(start)
    assert [text for text in sent if text.startswith("UPDATE")] == ["UPDATE calls SET"] * 3
    assert not [text for text in sent if text.startswith("SELECT")]   # decided by the database
    s.commit()
    calls.end_call(s, "CAw8", "no-answer")
    s.commit()
    kept, abandoned, never = (history.call_record(s, sid) for sid in ("CAw3", "CAw4", "CAw8"))
    assert (kept["outcome"], kept["outcome_detail"]) == ("transferred", {"department": "roads"})
    assert (abandoned["outcome"], abandoned["outcome_detail"]) == ("abandoned", {"at_step": "confirm"})
    assert (never["outcome"], never["outcome_detail"]) == ("abandoned", {"at_step": "welcome"})
    assert kept["duration_s"] == 40.0 and kept["ended"] is not None
    assert [e["kind"] for e in kept["events"]] == ["outcome", "status"]
    assert [(e["kind"], e["detail"]) for e in abandoned["events"]] == [
        ("outcome", {"outcome": "abandoned", "at_step": "confirm"}), ("status", {"status": "completed", "duration_s": 9})]
    assert [e["detail"].get("outcome") or e["detail"]["status"] for e in never["events"]] == \
        ["in-progress", "abandoned", "no-answer"]


def test_a_call_starts_with_its_state_in_one_statement_that_fills_only_missing_numbers(store):
    s, statements = store
    start = len(statements.seen)
    calls.start_call(s, "CAw6", "+15551234567", "+15550001111", CallState(step="welcome", language="es"))
    assert statements.since(start) == ["INSERT INTO calls"]   # no rowcount asked, no UPDATE
    calls.add_event(s, "CAw7", "status", {"status": "ringing"})   # a callback created this one first
    s.commit()
    calls.start_call(s, "CAw7", "+15557654321", "+15550001111", CallState(step="welcome"))
    calls.start_call(s, "CAw6", "+19999999999", "", CallState(step="ask", language="es"))   # a retry
    s.commit()
    first, second = history.call_record(s, "CAw6"), history.call_record(s, "CAw7")
    assert (first["from"], first["to"]) == ("+15551234567", "+15550001111")
    assert calls.load_state(s, "CAw6") == CallState(step="ask", language="es")
    assert s.get(models.Call, "CAw6").language == "es"
    assert (second["from"], second["to"]) == ("+15557654321", "+15550001111")
    assert calls.load_state(s, "CAw7") == CallState(step="welcome")
    assert [e["kind"] for e in second["events"]] == ["status"]


def test_a_parked_turn_is_read_without_a_write_and_cleared_with_the_state(store):
    s, statements = store
    calls.ensure_call(s, "CAw5", "", "")
    calls.put_pending_turn(s, "CAw5", Turn(speech="trash pickup", asr_confidence=0.8))
    s.commit()
    start = len(statements.seen)
    assert calls.pending_turn(s, "CAw5") == Turn(speech="trash pickup", asr_confidence=0.8)
    assert calls.pending_turn(s, "CAw5") == Turn(speech="trash pickup", asr_confidence=0.8)   # a read only
    assert not [text for text in statements.since(start) if _WRITE.match(text)]
    calls.save_state(s, "CAw5", CallState(step="confirm"), clear_pending_turn=True)
    s.commit()
    assert calls.pending_turn(s, "CAw5") is None
    # SQL NULL, not a JSON null.
    assert s.scalar(select(func.count()).select_from(models.Call)
                    .where(models.Call.sid == "CAw5", models.Call.pending_turn.is_(None))) == 1
    assert calls.pending_turn(s, "CAunknown") is None


# --- whole webhooks ---------------------------------------------------------------------------
@pytest.fixture
def app_config(app_config, db_url):
    return {**app_config, "IVR_DATABASE_URL": db_url, "IVR_TTS": "off", "IVR_CLOCK": SettableClock(OPEN)}


@pytest.fixture
def traced(app, monkeypatch):
    """The app's SQL statements and, in the same list, a "RENDER" mark each time TwiML is rendered
    for a decision and a "REQUEST" mark as each request starts."""
    log: list[str] = []
    event.listen(db.engine(app), "before_cursor_execute", lambda _c, _cur, statement, *_r: log.append(statement))
    app.before_request(lambda: log.append("REQUEST"))
    render = conversation.render

    def traced_render(*args, **kwargs):
        log.append("RENDER")
        return render(*args, **kwargs)

    monkeypatch.setattr(conversation, "render", traced_render)
    yield log
    db.engine(app).dispose()


def _requests(log: list[str]) -> list[list[str]]:
    chunks: list[list[str]] = []
    for entry in log:
        if entry == "REQUEST":
            chunks.append([])
        elif chunks:
            chunks[-1].append(entry)
    return chunks


def test_every_decision_is_rendered_before_the_webhooks_first_write(app, client, traced):
    sim = simulated_call(client)
    sim.call()
    sim.silence()
    sim.say("pothole", confidence=0.30)                  # unsure: confirm
    sim.say("yes")
    assert sim.find("Dial/Number").text == "+13125550101"
    sim.dial_ends("busy")
    sim.post(sim.absolute(f"/voice/status?n=9"), sim.params(CallStatus="completed", CallDuration="50"))
    rendered = [chunk for chunk in _requests(traced) if "RENDER" in chunk]
    assert len(rendered) == 5
    for chunk in rendered:
        first_write = next(i for i, text in enumerate(chunk) if _WRITE.match(text))
        assert chunk.index("RENDER") < first_write, chunk
        # At most one write of the call's row per webhook, and no read once writing has begun.
        assert sum(1 for text in chunk if text.lstrip().startswith(("UPDATE calls", "INSERT INTO calls"))) == 1, chunk
        assert not [text for text in chunk[first_write:] if text.lstrip().startswith("SELECT")], chunk
    with app.app_context():
        record = history.call_record(db.session(), sim.sid)
    assert record["outcome"] is not None and record["outcome"] != "abandoned"


def test_a_turn_parked_by_the_media_stream_is_used_once_and_a_retry_replays_its_answer(app, client, traced):
    sim = simulated_call(client)
    sim.call()
    sim.silence()                                         # now asked what the call is about
    with app.app_context():
        calls.put_pending_turn(db.session(), sim.sid, Turn(speech="I want to report a pothole on Main Street",
                                                           asr_confidence=0.9))
        db.session().commit()
    action = sim.find("Gather").get("action")
    url, params = sim.absolute(action), sim.params()
    start = len(traced)
    first = sim.post(url, params)
    assert sim.find("Dial/Number").text == "+13125550101"
    chunk = _requests(traced[start:])[0]
    first_write = next(i for i, text in enumerate(chunk) if _WRITE.match(text))
    assert chunk.index("RENDER") < first_write   # the parked turn was read, not taken, before deciding
    again = sim.post(url, params)                         # Twilio retries the same request
    assert again.data == first.data
    with app.app_context():
        record = history.call_record(db.session(), sim.sid)
        assert calls.pending_turn(db.session(), sim.sid) is None
    assert [t["heard"] for t in record["turns"]].count("I want to report a pothole on Main Street") == 1
    assert record["outcome"] == "transferred"
