"""Whole SMS conversations through the signed webhook `/sms/incoming`, on SQLite and PostgreSQL.

A citizen (ivr.telephony.simulator.SimulatedTexter) texts the city number as Twilio delivers texts;
the shipped routing_rules.yaml and prompts/sms/*.yaml are the city. What is checked is what the
texter reads and what was stored.
"""
from __future__ import annotations

import logging
import re
from datetime import datetime, timezone

import pytest

from conftest import PUBLIC_URL, SettableClock, TEST_AUTH_TOKEN
from ivr.store import db, service_requests, sms_contacts
from ivr.store.alerts import topics_of
from ivr.telephony.simulator import FlaskTransport, SimulatedTexter

pytestmark = pytest.mark.db

# Tuesday 10 March 2026, 10:00 in Chicago: the city is open.
OPEN = datetime(2026, 3, 10, 15, 0, tzinfo=timezone.utc)
# The same Tuesday, 22:00 in Chicago: weekday departments are closed.
NIGHT = datetime(2026, 3, 11, 3, 0, tzinfo=timezone.utc)
PHONE = "+13125550142"
CASE = re.compile(r"\b(\d{7})\b")


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock(OPEN)


@pytest.fixture
def app_config(app_config, clock, db_url):
    return {**app_config, "IVR_TTS": "off", "IVR_CLOCK": clock, "IVR_DATABASE_URL": db_url}


@pytest.fixture
def app(app_config):
    from ivr import create_app

    app = create_app(app_config)
    yield app
    db.engine(app).dispose()


def texter(client, phone: str = PHONE) -> SimulatedTexter:
    return SimulatedTexter(FlaskTransport(client), token=TEST_AUTH_TOKEN, public_url=PUBLIC_URL, from_=phone)


@pytest.fixture
def citizen(client) -> SimulatedTexter:
    return texter(client)


def case_in(reply: str) -> str:
    found = CASE.search(reply)
    assert found, f"no case number in {reply!r}"
    return found.group(1)


def stored(app, case: str):
    with app.app_context():
        return service_requests.by_case(db.session(), case)


def contact(app, phone: str = PHONE):
    with app.app_context():
        return sms_contacts.contact(db.session(), phone)


def requests_of(app) -> list:
    with app.app_context():
        return service_requests.search(db.session())


def test_a_report_with_its_place_opens_a_case_at_once(app, citizen):
    reply = citizen.text("Deep pothole at 120 Main St, please fix")
    case = case_in(reply)
    assert f"Case {case}" in reply and "Streets and Roads" in reply and "120 Main St" in reply
    assert "closed now" not in reply and f"STATUS {case}" in reply
    request = stored(app, case)
    assert request.channel == "sms" and request.source_key == f"sms:{citizen.last_params['MessageSid']}"
    assert request.department == "roads" and request.address == "120 Main St" and request.language == "en"
    assert request.description == "Deep pothole at 120 Main St, please fix"
    assert request.contact_phone == PHONE and request.text_consent is True


def test_a_missing_place_is_asked_once_and_the_draft_remembered(app, citizen):
    asked = citizen.text("missed garbage pickup this week")
    assert "Where is it?" in asked and not CASE.search(asked)
    assert contact(app).pending["stage"] == "location"
    reply = citizen.text("1412 W Foster Ave")
    case = case_in(reply)
    assert "Sanitation" in reply
    request = stored(app, case)
    assert request.address == "1412 W Foster Ave" and request.description == "missed garbage pickup this week"
    assert not contact(app).pending


def test_after_hours_the_reply_gives_the_departments_hours(app, citizen, clock):
    clock.now = NIGHT
    reply = citizen.text("streetlight out on Elm Street")
    case = case_in(reply)
    assert "Street Lighting is closed now. Hours: Monday to Friday" in reply
    assert stored(app, case).department == "streetlights"


def test_spanish_is_detected_and_kept(app, citizen):
    asked = citizen.text("hay un bache enorme en mi cuadra")
    assert "¿Dónde está?" in asked
    reply = citizen.text("calle Juárez 120")
    case = case_in(reply)
    assert reply.startswith(f"Caso {case}") and "Calles y Carreteras" in reply and "ESTADO" in reply
    assert stored(app, case).language == "es" and contact(app).language == "es"


def test_spanish_or_english_can_be_chosen(app, citizen):
    assert "en español" in citizen.text("ESPAÑOL")
    assert contact(app).language == "es"
    assert "Caso" in citizen.text("pothole at 120 Main St")
    assert "in English" in citizen.text("english")
    assert contact(app).language == "en"


def test_an_unsure_text_is_confirmed_first(app, citizen):
    asked = citizen.text("something wrong with the road")          # road_surface at ~0.59: confirm
    assert asked == "It sounds like a damaged road surface. Is that right? Reply YES or NO."
    assert "Where is it?" in citizen.text("yes")
    case = case_in(citizen.text("Oak St and 5th Ave"))
    assert stored(app, case).department == "roads" and stored(app, case).address == "Oak St and 5th Ave"


def test_no_offers_the_other_choices_and_a_number_picks_one(app, citizen):
    assert "YES or NO" in citizen.text("something wrong with the road")
    choices = citizen.text("no")
    assert choices.startswith("Which is it? Reply 1 for ") and "2 for " in choices
    second = choices.split("2 for ")[1].split(";")[0].split(". Or")[0]
    picked = citizen.text("2")
    assert "Where is it?" in picked or "not by text" in picked, (second, picked)


def test_a_vague_text_gets_numbered_choices(app, citizen):
    choices = citizen.text("light")                                # three departments, none sure
    assert choices.startswith("Which is it? Reply 1 for ") and "3 for " in choices
    options = contact(app).pending["options"]
    assert options[0] == "streetlight_out"
    assert "Got it: " in citizen.text("1") and contact(app).pending["stage"] == "location"


def test_status_answers_only_the_texters_own_case(app, client, citizen):
    case = case_in(citizen.text("pothole at 120 Main St"))
    assert f"Case {case} (" in citizen.text(f"STATUS {case[:3]}-{case[3:]}") and "is open" in citizen.text(f"status {case}")
    with app.app_context():
        s = db.session()
        service_requests.set_status(s, case, "acknowledged", "crew scheduled for Thursday", by="roads")
        s.commit()
    update = citizen.text(f"STATUS {case}")
    assert "working on it" in update and "crew scheduled for Thursday" in update
    assert f"found no case {case}" in texter(client, "+13125550999").text(f"STATUS {case}")
    assert "STATUS and the case number" in citizen.text("STATUS 123")
    assert f"Case {case}" in citizen.text(case)          # a bare case number is a status question


def test_stop_is_honoured_and_remembered_until_start(app, citizen):
    assert "no more texts" in citizen.text("STOP")
    assert contact(app).opted_out
    assert citizen.text("pothole at 120 Main St") == ""      # nothing sent, nothing opened
    assert requests_of(app) == []
    assert "on again" in citizen.text("START")
    assert not contact(app).opted_out
    assert "Case" in citizen.text("pothole at 120 Main St")


@pytest.mark.parametrize("word", ["STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"])
def test_twilio_stop_synonyms(app, citizen, word):
    assert "no more texts" in citizen.text(word)
    assert contact(app).opted_out
    assert "on again" in citizen.text("YES")        # an opt-in keyword for an opted-out number


def test_help_lists_what_the_line_does(citizen):
    reply = citizen.text("HELP")
    assert "STATUS" in reply and "SUBSCRIBE" in reply and "WATER" in reply and "911" in reply
    assert "STATUS" in citizen.text("info")
    assert "ESTADO" in citizen.text("AYUDA") or "STATUS" in citizen.text("AYUDA")


def test_an_emergency_gets_the_911_advice_and_no_case(app, citizen):
    assert "Where is it?" in citizen.text("missed garbage pickup")     # a draft waiting for the place…
    reply = citizen.text("my kitchen is on fire")
    assert "call 911 now" in reply and "no case was opened" in reply
    assert requests_of(app) == [] and not contact(app).pending   # …is dropped


def test_a_retry_of_the_same_message_has_one_effect(app, citizen):
    first = citizen.text("pothole at 120 Main St")
    assert citizen.resend() == first
    assert len(requests_of(app)) == 1


def test_forged_or_missing_signatures_are_refused_and_change_nothing(app, citizen):
    params = citizen.params("STOP")
    assert citizen.post(params, signature="forged").status_code == 403
    assert citizen.post(citizen.params("pothole at 120 Main St"), signature="").status_code == 403
    assert contact(app) is None and requests_of(app) == []


@pytest.mark.parametrize("body, media, expected", [
    ("", 0, "Your text was empty"),
    ("", 1, "cannot look at pictures"),
    ("😡😡😡", 0, "could not read that"),
    ("pothole " * 300, 0, "too long"),
])
def test_bad_bodies_get_a_helpful_reply(citizen, body, media, expected):
    assert expected in citizen.text(body, media=media)


def test_an_internal_failure_still_answers_valid_twiml(app, citizen, monkeypatch):
    import ivr.web.sms.webhook as webhook

    def broken(*_args, **_kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(webhook, "respond", broken)
    reply = citizen.text("pothole at 120 Main St")
    assert citizen.last.status_code == 200 and "Please call 311" in reply
    assert requests_of(app) == []


def test_subscriptions_by_text_in_both_languages(app, citizen, client):
    assert "alerts about water and sewer service" in citizen.text("SUBSCRIBE WATER")
    spanish = texter(client, "+13125550177")
    assert "alertas del 311 sobre servicio de agua" in spanish.text("SUSCRIBIR AGUA")
    with app.app_context():
        assert topics_of(db.session(), PHONE) == ["water"]
        assert topics_of(db.session(), "+13125550177") == ["water"]
    unknown = citizen.text("SUBSCRIBE volcanoes")
    assert 'no alerts about "volcanoes"' in unknown and "WATER" in unknown and "LIGHTS" in unknown
    assert "No more alerts about water" in citizen.text("UNSUBSCRIBE WATER")
    with app.app_context():
        assert topics_of(db.session(), PHONE) == []


def test_numbers_never_appear_in_full_in_the_logs(citizen, caplog):
    caplog.set_level(logging.DEBUG)
    citizen.text("pothole at 120 Main St")
    citizen.text("STOP")
    assert PHONE not in caplog.text and "5550142" not in caplog.text
