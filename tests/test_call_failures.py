"""Calls when things go wrong: forged requests, a dead database, broken rules, Twilio retries,
malformed parameters. Every answer is a 4xx or valid TwiML that reaches a person, never a 5xx."""
from __future__ import annotations

import logging
import shutil
import xml.etree.ElementTree as ET

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from ivr import rules_source
from ivr.store import calls, db
from test_call_flows import OPEN, record_of, start_in_english
from conftest import SettableClock, simulated_call
from ivr.telephony.simulator import SimulatedCall

OPERATOR_LINE = "sip:operator@pbx.city.example.gov"


@pytest.fixture
def app_config(app_config, tmp_path):
    rules = tmp_path / "routing_rules.yaml"
    shutil.copy(app_config["IVR_RULES_PATH"], rules)
    return {**app_config, "IVR_TTS": "off", "IVR_CLOCK": SettableClock(OPEN), "IVR_RULES_PATH": str(rules),
            "IVR_OPERATOR_FALLBACK": "+13125550100"}


@pytest.fixture
def sim(client) -> SimulatedCall:
    return simulated_call(client)


def break_database(app, monkeypatch) -> None:
    """Point the app's sessions at a database that cannot be opened (like a server gone away)."""
    dead = create_engine("sqlite:////nonexistent-dir/ivr.sqlite3")
    monkeypatch.setitem(app.extensions, db._EXT_SESSIONS, sessionmaker(dead))


def test_forged_signature_is_refused_and_nothing_written(app, client, sim):
    forged = simulated_call(client, token="not-the-token")
    assert forged.call().status_code == 403
    assert sim.post("/voice/incoming", sim.params(), signature="").status_code == 403
    assert record_of(app, forged.sid) is None and record_of(app, sim.sid) is None


def test_tampered_parameters_are_refused_mid_call(app, sim):
    start_in_english(sim)
    action = sim.find("Gather").get("action")
    signature = sim.sign(action, sim.params(Digits="1"))
    response = sim.post(action, sim.params(Digits="0"), signature=signature)
    assert response.status_code == 403
    assert record_of(app, sim.sid)["state"]["step"] == "ask"


def test_database_down_mid_call_sends_the_caller_to_the_operator(app, sim, monkeypatch, caplog):
    start_in_english(sim)
    break_database(app, monkeypatch)
    with caplog.at_level(logging.ERROR):
        response = sim.say("there is a pothole on my street")
    assert response.status_code == 200 and response.mimetype == "text/xml"
    assert sim.find("Dial/Sip").text == OPERATOR_LINE
    logged = caplog.text
    assert "OperationalError" in logged and "+1******0123" in logged and "+13125550123" not in logged


def test_database_down_at_the_fallback_url_still_reaches_a_person(app, sim, monkeypatch):
    break_database(app, monkeypatch)
    response = sim.post("/voice/fallback", sim.params(ErrorCode="11200", ErrorUrl="https://ivr.example.test/voice/turn"))
    assert response.status_code == 200 and sim.find("Dial/Sip").text == OPERATOR_LINE


def test_broken_rules_file_mid_call_keeps_the_last_good_rules(app, sim):
    start_in_english(sim)
    with open(app.config["IVR_RULES_PATH"], "w", encoding="utf-8") as broken:
        broken.write("departments: [this is: not valid\n")
    with app.app_context():
        rules_source.check_now()
    sim.say("there is a pothole on my street")
    assert sim.find("Dial/Number").text == "+13125550101"


def test_unusable_rules_use_the_configured_operator_number(app, sim, monkeypatch):
    start_in_english(sim)

    def no_rules():
        raise RuntimeError("rules unavailable")

    monkeypatch.setattr(rules_source, "current_rules", no_rules)
    response = sim.say("there is a pothole on my street")
    assert response.status_code == 200 and sim.find("Dial/Number").text == "+13125550100"


def test_twilio_retry_of_a_gather_has_one_effect(app, sim):
    start_in_english(sim)
    action = sim.find("Gather").get("action")
    params = sim.params(SpeechResult="there is a pothole on my street", Confidence="0.9")
    headers = {"I-Twilio-Idempotency-Token": "retry-token-1"}
    first = sim.post(action, params, headers=headers)
    second = sim.post(action, params, headers=headers)
    assert first.data == second.data and ET.fromstring(second.data).find("Dial") is not None
    record = record_of(app, sim.sid)
    assert [t["step"] for t in record["turns"]] == ["welcome", "ask"]
    assert record["state"]["seq"] == 3


def test_repeated_incoming_and_recording_callbacks_have_one_effect(app, sim):
    first = sim.call()
    second = sim.call()
    assert first.data == second.data
    assert sum(1 for e in record_of(app, sim.sid)["events"] if e["kind"] == "decision") == 1
    sim.silence()
    sim.press("9")
    sim.press("1")
    sim.press("1")                       # roads
    sim.dial_ends("no-answer")
    sim.queue_ends("leave")
    params = sim.params(RecordingSid="RE" + "2" * 32, RecordingUrl="https://api.twilio.com/r/RE2",
                        RecordingStatus="completed", RecordingDuration="9")
    callback = sim.find("Record").get("recordingStatusCallback")
    for _ in range(2):
        assert sim.post(callback, params).status_code == 200
    assert len(record_of(app, sim.sid)["messages"]) == 1


@pytest.mark.parametrize("params,status", [
    ({"From": "+13125550123"}, 400),                                  # no CallSid
    ({"CallSid": "CA" + "9" * 32, "Digits": "12ab"}, 400),            # garbage Digits
    ({"CallSid": "CA" + "9" * 32, "Digits": "5" * 40}, 400),
    ({"CallSid": "../../etc", "Digits": "1"}, 400),                   # malformed CallSid
])
def test_malformed_parameters_get_a_clear_400(sim, params, status):
    response = sim.post("/voice/turn?step=ask&n=2", params)
    assert response.status_code == status
    assert b"Digits" in response.data or b"CallSid" in response.data


def test_huge_speech_result_is_cut_and_answered_with_twiml(app, sim):
    start_in_english(sim)
    response = sim.say("pothole " * 20000)
    assert response.status_code == 200 and sim.has("Dial")
    assert len(record_of(app, sim.sid)["turns"][-1]["heard"]) <= 500


def test_wrong_content_type_gets_415(client):
    response = client.post("/voice/incoming", json={"CallSid": "CA1"},
                           headers={"X-Twilio-Signature": "x"}, base_url="https://ivr.example.test")
    assert response.status_code == 415 and b"form-urlencoded" in response.data


def test_get_webhooks_are_signed_over_the_query_string(app, client):
    sim = simulated_call(client)
    url = f"https://ivr.example.test/voice/incoming?CallSid={sim.sid}&From=%2B13125550123"
    response = client.get(url.removeprefix("https://ivr.example.test"), base_url="https://ivr.example.test",
                          headers={"X-Twilio-Signature": sim.sign(url, {})})
    assert response.status_code == 200 and ET.fromstring(response.data).find("Gather") is not None
    with app.app_context():
        assert calls.load_state(db.session(), sim.sid).step == "welcome"


def test_hold_music_and_whisper_failures_stay_valid_for_their_verbs(app, sim, monkeypatch):
    start_in_english(sim)
    sim.say("there is a deep pothole on my street")
    sim.dial_ends("busy")
    assert sim.has("Enqueue")

    def no_rules():
        raise RuntimeError("rules unavailable")

    monkeypatch.setattr(rules_source, "current_rules", no_rules)
    hold = sim.hold()
    assert hold.last.status_code == 200 and hold.verbs() == ["Leave"]   # <Dial> is not allowed on hold
    whisper = sim.post("/voice/whisper?call=" + sim.sid, sim.params())
    assert whisper.status_code == 200 and sim.verbs() == []               # agent is simply connected


def test_a_turn_for_a_call_never_greeted_starts_it(app, sim):
    response = sim.post("/voice/turn?step=ask&n=5", sim.params(Digits="2"))
    assert response.status_code == 200
    record = record_of(app, sim.sid)
    assert record["language"] == "es" and record["from"] == "+13125550123"


@pytest.mark.db
def test_call_and_retry_on_each_database(app_config, db_url):
    from ivr import create_app

    app = create_app({**app_config, "IVR_DATABASE_URL": db_url})
    sim = simulated_call(app.test_client())
    start_in_english(sim)
    action = sim.find("Gather").get("action")
    params = sim.params(SpeechResult="there is a pothole on my street", Confidence="0.9")
    first, second = sim.post(action, params), sim.post(action, params)
    assert first.data == second.data and sim.find("Dial/Number").text == "+13125550101"
    record = record_of(app, sim.sid)
    assert len(record["turns"]) == 2 and record["outcome"] == "transferred"
    with app.app_context():
        db.engine().dispose()
