"""Whole calls through the Flask test client, signed and followed like Twilio does (ivr.telephony.simulator).

The shipped routing_rules.yaml is the city; a clock fixture picks the moment of the call.
Prompts are rendered as <Say> (IVR_TTS=off) so tests can read what the caller hears.
"""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from ivr.store import db, history
from conftest import SettableClock, simulated_call
from ivr.telephony.simulator import SimulatedCall

# Tuesday 10 March 2026, 10:00 in Chicago (CDT): the city is open.
OPEN = datetime(2026, 3, 10, 15, 0, tzinfo=timezone.utc)
# The same Tuesday, 22:00 in Chicago: weekday departments are closed.
NIGHT = datetime(2026, 3, 11, 3, 0, tzinfo=timezone.utc)
# Memorial Day, Monday 25 May 2026, 10:00 CDT: a city holiday.
MEMORIAL_DAY = datetime(2026, 5, 25, 15, 0, tzinfo=timezone.utc)


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock(OPEN)


@pytest.fixture
def app_config(app_config, clock):
    return {**app_config, "IVR_TTS": "off", "IVR_CLOCK": clock}


@pytest.fixture
def sim(client) -> SimulatedCall:
    return simulated_call(client)


def record_of(app, sid: str) -> dict:
    with app.app_context():
        return history.call_record(db.session(), sid)


def spoken(sim: SimulatedCall) -> str:
    return " ".join(sim.texts())


def start_in_english(sim: SimulatedCall) -> None:
    sim.call()
    assert sim.last.status_code == 200 and sim.verbs() == ["Gather", "Redirect"]
    sim.silence()                      # no language chosen → English, asked what the call is about
    assert sim.find("Gather").get("action").endswith("step=ask&n=2")


def test_greeting_leads_with_the_advisory_and_offers_spanish(sim):
    sim.call()
    assert sim.last.mimetype == "text/xml"
    texts = sim.texts()
    assert "dial 9 1 1" in texts[0] and texts[1].startswith("Para español")
    assert sim.find("Say").get("language") == "en-US"
    assert "español" in sim.find("Gather").get("hints")


def test_confident_speech_transfers_with_a_whisper(app, sim):
    start_in_english(sim)
    sim.say("I want to report a pothole on Main Street")
    assert sim.verbs() == ["Say", "Dial"]
    assert "Streets and Roads" in spoken(sim)
    dial = sim.find("Dial")
    assert dial.find("Number").text == "+13125550101"
    agent = sim.whisper()
    whisper = " ".join(agent.texts())
    assert "Streets and Roads" in whisper and "pothole on Main Street" in whisper
    assert "Language English" in whisper and "3 1 2, 5 5 5, 0 1 2 3" in whisper
    sim.dial_ends("completed", duration=95)
    assert sim.verbs()[-1] == "Hangup"
    record = record_of(app, sim.sid)
    assert record["outcome"] == "transferred" and record["outcome_detail"]["department"] == "roads"
    assert [t["step"] for t in record["turns"]] == ["welcome", "ask"]
    welcome, ask = record["turns"]
    assert "dial 9 1 1" in welcome["prompt"] and "Para español" in welcome["prompt"]
    assert ask["prompt"].startswith("Briefly, what are you calling about?")
    assert ask["heard"] == "I want to report a pothole on Main Street"
    assert "Confidence" in whisper and "percent" in whisper


def test_unsure_then_yes_transfers(sim):
    start_in_english(sim)
    sim.say("pothole", confidence=0.30)          # recogniser unsure of the words → confirm
    assert "It sounds like a pothole" in spoken(sim)
    sim.say("yes")
    assert sim.find("Dial/Number").text == "+13125550101"


def test_unsure_then_no_asks_again_then_menu(sim):
    start_in_english(sim)
    sim.say("pothole", confidence=0.30)
    sim.say("no")
    assert "say it again" in spoken(sim)
    sim.say("pothole", confidence=0.30)
    sim.press("2")                               # 2 = no
    assert sim.find("Gather").get("input") == "dtmf" and "keypad" in spoken(sim)


def test_no_input_three_times_then_menu_then_operator(app, sim):
    start_in_english(sim)
    sim.silence()
    assert "did not hear" in spoken(sim)
    sim.silence()
    sim.silence()
    assert "keypad" in spoken(sim) and sim.find("Gather").get("input") == "dtmf"
    for _ in range(3):
        sim.silence()
    assert sim.find("Enqueue").text == "operator"   # the operator desk answers by queue
    assert record_of(app, sim.sid)["outcome"] == "operator"


def test_keypad_menu_two_levels(sim):
    start_in_english(sim)
    sim.press("9")
    sim.press("1")
    assert "For Street Lighting, press 2." in sim.texts()
    sim.press("7")                               # not an option: reprompt at the same level
    assert "did not understand" in spoken(sim) and "For Street Lighting, press 2." in sim.texts()
    sim.press("2")
    assert sim.find("Dial/Number").text == "+13125550102"
    whisper = " ".join(sim.whisper().texts())
    assert "Street Lighting" in whisper and "Confidence none, chosen on the keypad" in whisper


def test_zero_reaches_the_operator_from_the_greeting(sim):
    sim.call()
    sim.press("0")
    assert sim.find("Enqueue").text == "operator"


def test_busy_department_queues_then_caller_leaves_a_message(app, sim):
    start_in_english(sim)
    sim.say("there is a deep pothole on my street")
    sim.dial_ends("busy")
    assert sim.find("Enqueue").text == "roads"
    hold = sim.hold(position=3, avg_seconds=240)
    assert "You are number 3 in line. The wait is about 4 minutes." in hold.texts()
    assert hold.verbs() == ["Say", "Gather", "Redirect"]
    hold.press("1")
    assert hold.verbs() == ["Leave"]
    sim.queue_ends("leave")
    assert sim.has("Record")
    sim.record(duration=14)
    assert "Your message was saved" in spoken(sim) and sim.verbs()[-1] == "Hangup"
    record = record_of(app, sim.sid)
    assert [(m["department"], m["kind"]) for m in record["messages"]] == [("roads", "voicemail")]
    assert record["recordings"][0]["duration_s"] == 14


def test_after_hours_states_hours_and_takes_voicemail(app, sim, clock):
    clock.now = NIGHT
    start_in_english(sim)
    sim.say("there is a deep pothole on my street")
    assert "Streets and Roads is closed now. Opening hours: Monday to Friday, 7 AM to 5 PM." in sim.texts()
    assert "To leave a message, press 2." in sim.texts()   # beside "report it now" (tests/test_voice_channels.py)
    sim.press("2")
    sim.record()
    assert record_of(app, sim.sid)["messages"][0]["department"] == "roads"


def test_holiday_closes_the_department_and_a_callback_can_be_requested(app, sim, clock):
    clock.now = MEMORIAL_DAY
    start_in_english(sim)
    sim.press("9")
    sim.press("3")
    sim.press("1")                               # Buildings and Permits: closed → call back
    assert "Buildings and Permits is closed now" in spoken(sim) and "call back" in spoken(sim)
    assert "closed today for Memorial Day" in spoken(sim)
    assert "To get a call back, press 2." in sim.texts()   # 1 reports it now (tests/test_voice_channels.py)
    sim.press("2")
    assert "We will call you back" in spoken(sim)
    record = record_of(app, sim.sid)
    assert [(m["department"], m["kind"]) for m in record["messages"]] == [("building", "callback")]
    assert record["outcome"] == "callback"


def test_emergency_advisory_and_transfer_never_queue(app, sim):
    start_in_english(sim)
    sim.say("my neighbor's house is on fire")
    assert sim.texts()[0].startswith("If this is an emergency")
    assert sim.find("Dial/Number").text == "+13125550199" and not sim.has("Enqueue")
    sim.dial_ends("failed")                      # emergency line failed: the operator line, dialled
    assert sim.find("Dial/Sip").text == "sip:operator@pbx.city.example.gov" and not sim.has("Enqueue")
    assert record_of(app, sim.sid)["outcome"] == "emergency"


def test_spanish_call(sim):
    sim.call()
    sim.press("2")
    assert sim.find("Gather").get("language") == "es-US"
    assert sim.find("Say").get("language") == "es-MX" and "por qué nos llama" in spoken(sim)
    sim.say("hay un bache muy grande en mi calle")
    assert "Le comunico con Calles y Carreteras" in spoken(sim)
    assert "Language Spanish" in " ".join(sim.whisper().texts())


def test_status_callback_marks_an_unrouted_call_abandoned(app, sim):
    start_in_english(sim)
    response = sim.post("/voice/status", sim.params(CallStatus="completed", CallDuration=20))
    assert response.status_code == 200
    record = record_of(app, sim.sid)
    assert record["status"] == "completed" and record["outcome"] == "abandoned"


def test_keypad_only_line_skips_the_speech_question(app_config):
    from ivr import create_app

    app = create_app({**app_config, "IVR_SPEECH_ENGINE": "keypad"})
    sim = simulated_call(app.test_client())
    sim.call()
    assert sim.find("Gather").get("input") == "dtmf"
    sim.press("1")                               # English
    assert "keypad" in spoken(sim) and "For police non-emergency, press 6." in sim.texts()
    sim.press("6")
    assert sim.find("Dial/Number").text == "+13125550112"
