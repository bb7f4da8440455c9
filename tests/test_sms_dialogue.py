"""The SMS conversation as a pure function (ivr.routing.sms_dialogue): no server, no database, no clock."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from conftest import RULES_PATH
from ivr.routing.classify import Classifier
from ivr.routing.load import load_rules
from ivr.routing.services import service_for_intent
from ivr.routing.sms_dialogue import (PENDING_TTL, CaseView, LookUpCase, OpenCase, Reply, Texter, opened_reply,
                                      respond, status_reply)

RULES = load_rules(RULES_PATH)
CLASSIFIER = Classifier(RULES)
OPEN = datetime(2026, 3, 10, 15, 0, tzinfo=timezone.utc)      # Tuesday 10:00 in Chicago
NIGHT = datetime(2026, 3, 11, 3, 0, tzinfo=timezone.utc)      # Tuesday 22:00


def say(body: str, texter: Texter = Texter(), now: datetime = OPEN, **kwargs):
    return respond(texter, body, 0, now, RULES, CLASSIFIER, **kwargs)


def then(step: Reply, body: str, now: datetime = OPEN):
    """The texter's next text, with what the previous reply left to remember."""
    return say(body, Texter(language=step.language, pending=step.pending), now)


def keys(step: Reply) -> list[str]:
    return [key for key, _ in step.parts]


def test_a_report_with_a_place_is_a_case_to_open():
    step = say("streetlight out on Elm Street")
    assert isinstance(step, OpenCase)
    assert step.service.intent == "streetlight_out" and step.address == "Elm Street" and step.language == "en"


def test_the_place_is_asked_once_and_the_answer_taken_as_it_is():
    asked = say("missed garbage pickup")
    assert isinstance(asked, Reply) and keys(asked) == ["ask_location"]
    assert asked.pending["stage"] == "location" and asked.pending["intent"] == "missed_pickup"
    step = then(asked, "behind the blue house, 1412 W Foster")
    assert isinstance(step, OpenCase) and step.address == "behind the blue house, 1412 W Foster"
    assert step.description == "missed garbage pickup"


def test_a_new_clear_report_while_we_wait_for_a_place_starts_afresh():
    asked = say("missed garbage pickup")
    step = then(asked, "also the streetlight is out at 5 Oak St")
    assert isinstance(step, OpenCase) and step.service.intent == "streetlight_out" and step.address == "5 Oak St"


def test_a_draft_is_forgotten_after_a_day():
    asked = say("missed garbage pickup")
    late = then(asked, "1412 W Foster Ave", now=OPEN + PENDING_TTL + timedelta(minutes=1))
    assert not isinstance(late, OpenCase)


def test_yes_with_the_place_opens_at_once():
    asked = say("something wrong with the road")
    assert keys(asked) == ["confirm"]
    step = then(asked, "yes, at 5 Oak St")
    assert isinstance(step, OpenCase) and step.service.intent == "road_surface" and step.address == "5 Oak St"


def test_an_intent_without_a_service_says_who_handles_it():
    step = say("I want to pay my parking ticket")
    assert isinstance(step, Reply) and keys(step) == ["no_service"]
    assert step.parts[0][1]["department"] == "Parking Services"


def test_an_emergency_beats_a_stop_prefix_and_a_draft():
    asked = say("missed garbage pickup")
    step = say("stop someone is breaking into my house right now", Texter(pending=asked.pending))
    assert keys(step) == ["emergency"] and step.pending is None and step.effects == ()


def test_opted_out_numbers_get_nothing_but_start():
    out = Texter(opted_out=True)
    assert say("pothole at 120 Main St", out).parts == ()
    assert say("", out).parts == ()
    assert say("START", out).effects == (("opt_in",),)


def test_twilio_advanced_opt_out_is_recorded_without_a_second_answer():
    step = say("Stop please", carrier_keyword="STOP")
    assert step.parts == () and step.effects == (("opt_out",),) and step.outcome == "stop"
    assert say("START", carrier_keyword="START").effects == (("opt_in",),)


def test_status_questions_are_looked_up_by_the_edge():
    step = say("status # 482 7153")
    assert isinstance(step, LookUpCase) and step.case is None           # a wrong check digit
    from ivr.routing.services import new_case_number
    import random

    case = new_case_number(random.Random(3))
    step = say(f"STATUS {case[:3]}-{case[3:]}")
    assert isinstance(step, LookUpCase) and step.case == case
    view = CaseView(case=case, service=service_for_intent(RULES, "pothole"), service_name="Pothole",
                    status="closed", note="filled on Monday", department="roads")
    reply = status_reply(step, view, RULES, pending=None)
    assert keys(reply) == ["status_closed", "status_note"]
    assert keys(status_reply(step, None, RULES, pending=None)) == ["status_unknown"]


def test_the_opened_reply_adds_hours_only_when_closed_and_the_alert_when_there_is_one():
    step = say("streetlight out on Elm Street")
    assert keys(opened_reply("4827153", step, OPEN, RULES, None)) == ["opened", "status_hint"]
    night = opened_reply("4827153", step, NIGHT, RULES, "Crews are fixing lights on Elm.")
    assert keys(night) == ["opened", "closed_now", "alert_note", "status_hint"]
    assert night.parts[1][1]["hours"].startswith("Monday to Friday")


@pytest.mark.parametrize("body, language", [("ESPAÑOL", "es"), ("english", "en")])
def test_a_language_is_chosen_and_kept(body, language):
    step = say(body, Texter(language="en" if language == "es" else "es"))
    assert step.language == language and keys(step) == ["language_set"]


def test_a_text_clearly_in_the_other_language_switches_but_an_answer_does_not():
    step = say("hay un bache enorme en la calle de mi casa", Texter(language="en"))
    assert step.language == "es"
    assert say("pothole at 120 Main St", Texter(language="es")).language == "es"     # too few cues: kept
    asked = say("missed garbage pickup", Texter(language="en"))
    answer = then(asked, "en la esquina de la calle Juárez y Hidalgo")
    assert answer.language == "en"
