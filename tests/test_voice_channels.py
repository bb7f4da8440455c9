"""The voice side of the channels, as whole calls: after hours "report it now" (the case number read
back, texted with consent through the outbox to the fake Twilio REST API), alerts heard first and
counted, subscribing by phone. Signed webhooks followed as Twilio follows them
(ivr.telephony.simulator), in English and Spanish, on SQLite and PostgreSQL.

The shipped routing_rules.yaml is the city; prompts are <Say> (IVR_TTS=off) so tests read what the
caller hears.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from conftest import SettableClock, simulated_call
from fake_twilio_rest import ACCOUNT_SID, FakeTwilioRest
from ivr.store import alerts, db, history, service_requests
from ivr.store import outbox as outbox_rows
from ivr.telephony.simulator import SimulatedCall

# Tuesday 10 March 2026, 22:00 in Chicago: weekday departments are closed.
NIGHT = datetime(2026, 3, 11, 3, 0, tzinfo=timezone.utc)
# The same Tuesday, 10:00 in Chicago: the city is open.
OPEN = datetime(2026, 3, 10, 15, 0, tzinfo=timezone.utc)
CALLER = "+13125550123"


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock(NIGHT)


@pytest.fixture
def app_config(app_config, clock, db_url):
    return {**app_config, "IVR_TTS": "off", "IVR_CLOCK": clock, "IVR_DATABASE_URL": db_url,
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "IVR_SMS_FROM": "+13125550311"}


@pytest.fixture
def sim(client) -> SimulatedCall:
    return simulated_call(client, from_=CALLER)


def spoken(sim: SimulatedCall) -> str:
    return " ".join(sim.texts())


def case_read(sim: SimulatedCall) -> str:
    """The case number the caller heard, as digits ("Your case number is: 4 8 2, 7 1 5 3.")."""
    match = re.search(r"(?:case number is|número de caso es): ([0-9 ,]+)\.", spoken(sim))
    assert match, spoken(sim)
    return re.sub(r"\D", "", match.group(1))


def start(sim: SimulatedCall, language: str = "en") -> None:
    sim.call()
    if language == "es":
        sim.press("2")
    else:
        sim.silence()


def requests_of(app, sid: str) -> list:
    with app.app_context():
        found = service_requests.search(db.session(), limit=100)
    return [r for r in found if r.call_sid == sid]


def record_of(app, sid: str) -> dict:
    with app.app_context():
        return history.call_record(db.session(), sid)


# --- after hours: report it now ------------------------------------------------------------------
def test_report_by_speech_case_read_back_and_texted(app, sim):
    start(sim)
    sim.say("there is a big pothole in front of my house")
    heard = spoken(sim)
    assert "Streets and Roads is closed now" in heard
    assert "report it now and get a case number: press 1, or say report" in heard
    assert "To leave a message, press 2." in heard
    sim.say("I'd like to report it")
    assert "Where is it?" in spoken(sim) and "press 1, or say I don't know" in spoken(sim)
    sim.say("in front of 1200 North Elm Street")
    heard = spoken(sim)
    assert "Your report about" in heard and "pothole" in heard.lower()
    case = case_read(sim)
    assert "Again:" in heard and "press star, or say repeat" in heard and "To get it by text message, press 1." in heard
    [request] = requests_of(app, sim.sid)
    assert request.case_number == case and request.channel == "voice"
    assert request.description == "there is a big pothole in front of my house"
    assert request.address == "in front of 1200 North Elm Street" and request.language == "en"
    assert request.contact_phone == CALLER and request.department == "roads"
    assert record_of(app, sim.sid)["outcome"] == "reported"

    sim.say("repeat")                                   # heard again, digit by digit
    assert case_read(sim) == case and "Your report about" not in spoken(sim)
    sim.press("1")                                      # consent: text it to me
    assert "sending your case number by text message" in spoken(sim) and sim.verbs()[-1] == "Hangup"
    with app.app_context():
        row = outbox_rows.by_key(db.session(), f"voice-case:{sim.sid}")
    assert row is not None and row.kind == "sms" and row.target == CALLER
    assert case in row.payload["body"]
    assert [r.text_consent for r in requests_of(app, sim.sid)] == [True]     # filed without, given on 1

    # The worker delivers it to Twilio's REST API (the local fake).
    from ivr.outbox.worker import drain

    with FakeTwilioRest() as fake:
        app.config["IVR_TWILIO_API_URL"] = fake.url
        drain(app)
    assert [m["To"] for m in fake.messages] == [CALLER]
    assert case in fake.messages[0]["Body"] and "STATUS" in fake.messages[0]["Body"]


def test_report_by_keypad_only(app, sim):
    """The menu, a service chosen on the keypad, "I don't know where" by key, star to repeat."""
    start(sim)
    sim.press("9")
    sim.press("1")
    sim.press("1")                                      # Streets and Roads, closed
    assert "press 1, or say report" in spoken(sim)
    sim.press("1")
    heard = spoken(sim)
    assert "what is the problem?" in heard and re.search(r"For \w[^.]*, press 1\.", heard)
    sim.press("1")                                      # the first of the department's services
    assert "Where is it?" in spoken(sim)
    sim.press("1")                                      # I don't know
    case = case_read(sim)
    [request] = requests_of(app, sim.sid)
    assert request.case_number == case and request.address is None and request.department == "roads"
    sim.press("*")
    assert case_read(sim) == case
    sim.press("2")                                      # finish, no text
    assert "Keep your case number" in spoken(sim) and sim.verbs()[-1] == "Hangup"
    with app.app_context():
        assert outbox_rows.by_key(db.session(), f"voice-case:{sim.sid}") is None


def test_report_in_spanish(app, sim):
    start(sim, "es")
    sim.say("hay un bache enorme en mi calle")
    heard = spoken(sim)
    assert "está cerrada ahora" in heard and "Puede reportarlo ahora" in heard
    sim.say("quiero reportarlo")
    assert "¿Dónde está?" in spoken(sim)
    sim.say("no sé")
    case = case_read(sim)
    assert "Su reporte sobre" in spoken(sim) and "oprima asterisco" in spoken(sim)
    [request] = requests_of(app, sim.sid)
    assert request.case_number == case and request.language == "es" and request.address is None
    sim.say("mándemelo por texto")
    assert "Le estamos enviando su número de caso" in spoken(sim)
    with app.app_context():
        row = outbox_rows.by_key(db.session(), f"voice-case:{sim.sid}")
    assert row is not None and case in row.payload["body"] and "número de caso" in row.payload["body"]


def test_a_twilio_retry_files_one_request_and_texts_once(app, sim):
    start(sim)
    sim.say("there is a pothole on my street")
    sim.press("1")
    location = sim.find("Gather").get("action")
    params = sim.params(SpeechResult="corner of Main and Elm", Confidence="0.90")
    first = sim.post(location, params).data
    again = sim.post(location, params).data             # Twilio retried the same webhook
    assert again == first
    token = {"I-Twilio-Idempotency-Token": "retry-token-1"}
    sim.press("1")
    text_step = sim.url
    sim.post(text_step, sim.params(Digits="1"), headers=token)
    sim.post(text_step, sim.params(Digits="1"), headers=token)
    assert len(requests_of(app, sim.sid)) == 1
    with app.app_context():
        rows = [r for r in outbox_rows.search(db.session(), kind="sms") if r.key == f"voice-case:{sim.sid}"]
    assert len(rows) == 1


def test_an_emergency_during_a_report_takes_the_emergency_path(app, sim):
    start(sim)
    sim.say("there is a pothole on my street")
    sim.say("report")
    sim.say("there is a car accident and people are hurt")
    assert sim.texts()[0].startswith("If this is an emergency")
    assert sim.find("Dial/Number").text == "+13125550199"
    assert requests_of(app, sim.sid) == [] and record_of(app, sim.sid)["outcome"] == "emergency"


@pytest.mark.parametrize("step", ["offer", "problem", "location", "case"])
def test_zero_reaches_a_person_at_every_report_step(app, sim, step):
    start(sim)
    sim.press("9")
    sim.press("1")
    sim.press("1")
    for at, key in (("problem", "1"), ("location", "1"), ("case", "1")):
        if step == at or (step == "offer" and at == "problem"):
            break
        sim.press(key)
    sim.press("0")
    # The operator desk is closed at night: its own after-hours policy (a message), never a report offer.
    assert "General Information is closed now" in spoken(sim) and sim.has("Record")
    assert "report" not in spoken(sim).lower()


def test_silence_at_the_offer_falls_back_to_the_closed_policy(app, sim):
    start(sim)
    sim.say("there is a pothole on my street")
    sim.silence()
    assert "did not hear" in spoken(sim) and "press 1, or say report" in spoken(sim)
    assert "Opening hours" not in spoken(sim)          # the hours are said once
    sim.silence()
    sim.silence()
    assert sim.has("Record") and requests_of(app, sim.sid) == []
    outcomes = [e["detail"]["outcome"] for e in record_of(app, sim.sid)["events"] if e["kind"] == "outcome"]
    assert outcomes.count("after_hours") == 1          # the repeated offer is not a second after-hours call


def test_message_chosen_instead_of_a_report(app, sim):
    start(sim)
    sim.say("there is a deep pothole on my street")
    sim.say("leave a message")
    assert sim.has("Record")
    sim.record()
    assert record_of(app, sim.sid)["messages"][0]["department"] == "roads"


# --- alerts on the phone ------------------------------------------------------------------------
def publish(app, now: datetime) -> int:
    with app.app_context():
        s = db.session()
        alert = alerts.create_alert(s, topic="water", intents=("water_main_break", "no_water", "water_quality"),
                                    message={"en": "We know about the water main break on Elm Street; crews are on site.",
                                             "es": "Sabemos de la ruptura de la tubería en la calle Elm; hay cuadrillas en el lugar."},
                                    created_by="test", now=now - timedelta(minutes=5), until=now + timedelta(hours=4))
        s.commit()
        return alert.id


def heard_count(app, alert_id: int) -> int:
    with app.app_context():
        return alerts.get_alert(db.session(), alert_id).heard["voice"]


def test_an_active_alert_is_heard_first_and_counted_then_something_else_continues(app, sim, clock):
    clock.now = OPEN
    alert_id = publish(app, OPEN)
    start(sim)
    sim.say("there is no water coming out of my taps")
    heard = spoken(sim)
    assert "We know about the water main break on Elm Street; crews are on site." in heard
    assert "If you are calling about something else, press 1" in heard and "updates by text message, press 2" in heard
    assert heard_count(app, alert_id) == 1 and record_of(app, sim.sid)["outcome"] == "alert_heard"
    sim.say("it's something else")
    if "It sounds like" in spoken(sim):                  # unsure of the words: confirmed, as without the alert
        sim.say("yes")
    assert sim.find("Dial/Number").text == "+13125550105"     # Water and Sewer
    assert heard_count(app, alert_id) == 1
    assert record_of(app, sim.sid)["outcome"] == "transferred"


def test_a_caller_who_hangs_up_after_the_alert_was_answered_by_it(app, sim, clock):
    clock.now = OPEN
    alert_id = publish(app, OPEN)
    start(sim)
    sim.say("no water at my house")
    sim.silence()                                       # the alert once more, then thanks and goodbye
    assert "water main break" in spoken(sim)
    sim.silence()
    assert sim.verbs()[-1] == "Hangup"
    sim.hang_up()
    record = record_of(app, sim.sid)
    assert record["outcome"] == "alert_heard" and heard_count(app, alert_id) == 1
    assert [e["detail"]["outcome"] for e in record["events"] if e["kind"] == "outcome"] == ["alert_heard"]


def test_subscribing_to_the_topic_from_the_phone(app, sim, clock):
    clock.now = OPEN
    publish(app, OPEN)
    start(sim, "es")
    sim.say("no tengo agua en mi casa")
    assert "Sabemos de la ruptura" in spoken(sim)
    sim.press("2")
    assert "Le enviaremos noticias sobre servicio de agua" in spoken(sim) and sim.verbs()[-1] == "Hangup"
    with app.app_context():
        subscribed = alerts.subscribers(db.session(), "water")
    assert [(x.phone, x.language) for x in subscribed] == [(CALLER, "es")]


def test_no_alert_for_other_topics_and_none_after_it_ends(app, sim, clock, client):
    clock.now = OPEN
    alert_id = publish(app, OPEN)
    start(sim)
    sim.say("I want to report a pothole on Main Street")
    assert "water main" not in spoken(sim) and sim.has("Dial")
    with app.app_context():
        alerts.end_alert(db.session(), alert_id, by="test", now=OPEN)
        db.session().commit()
    later = simulated_call(client, from_=CALLER)
    start(later)
    later.say("no water at my house")
    assert "water main" not in spoken(later)
    if "It sounds like" in spoken(later):
        later.say("yes")
    assert later.has("Dial")
    assert heard_count(app, alert_id) == 0


def test_a_department_chosen_on_the_keypad_hears_its_topics_alert(app, sim, clock):
    clock.now = OPEN
    alert_id = publish(app, OPEN)
    start(sim)
    sim.press("9")
    sim.press("2")
    sim.press("1")                                      # Water and Sewer
    assert "water main break on Elm Street" in spoken(sim) and heard_count(app, alert_id) == 1
    sim.press("1")                                      # something else: on to the department
    assert sim.find("Dial/Number").text == "+13125550105"


def test_a_case_reported_by_phone_answers_status_by_text_from_the_same_number(app, client, sim):
    """The text the caller gets says "Reply STATUS <case>": the SMS channel answers it."""
    from conftest import PUBLIC_URL, TEST_AUTH_TOKEN
    from ivr.telephony.simulator import FlaskTransport, SimulatedTexter

    start(sim)
    sim.say("there is a pothole on my street")
    sim.press("1")
    sim.press("1")
    case = case_read(sim)
    same = SimulatedTexter(FlaskTransport(client), token=TEST_AUTH_TOKEN, public_url=PUBLIC_URL, from_=CALLER)
    reply = same.text(f"STATUS {case}")
    assert case in reply and "open" in reply, reply
    other = SimulatedTexter(FlaskTransport(client), token=TEST_AUTH_TOKEN, public_url=PUBLIC_URL,
                            from_="+13125550999")
    assert "open" not in other.text(f"STATUS {case}")
