"""After hours "report it now" and alerts heard first, as pure decisions (ivr.routing.report, decide).

On the shipped rules (routing_rules.yaml): its intents carry the service codes the report files.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

import random

import pytest

from ivr.routing.actions import FileReport
from ivr.routing.asking import interpret_choice
from ivr.routing.decide import decide
from ivr.routing.report import MAX_CASE_READS, filed
from ivr.routing.services import new_case_number, service_for_intent
from ivr.routing.state import CallState, Notice, Turn

NIGHT = datetime(2026, 3, 11, 3, 0, tzinfo=timezone.utc)      # Tuesday 22:00 in Chicago
OPEN = datetime(2026, 3, 10, 15, 0, tzinfo=timezone.utc)      # Tuesday 10:00 in Chicago


def said(state, words, rules, classifier, now=NIGHT, notice=None, confidence=0.9):
    return decide(state, Turn(speech=words, asr_confidence=confidence), classifier.classify(words, state.language),
                  now, rules, notice=notice)


def pressed(state, keys, rules, now=NIGHT, notice=None):
    return decide(state, Turn(digits=keys), None, now, rules, notice=notice)


ASKING = CallState(step="ask", language="en", asks=1)
CASE = new_case_number(random.Random(12))        # a valid number (its check digit holds)


def offered(rules, classifier, words="there is a big pothole in front of my house", language="en"):
    decision = said(replace(ASKING, language=language), words, rules, classifier)
    assert decision.action.kind == "after_hours" and decision.state.step == "after_hours", decision
    return decision


def test_a_closed_department_offers_a_report_beside_its_policy(rules, classifier):
    roads = offered(rules, classifier)
    assert roads.action.offers == ("report", "voicemail") and roads.action.hours.startswith("Monday to Friday")
    menu = pressed(pressed(pressed(ASKING, "9", rules).state, "3", rules).state, "1", rules)   # building: call back
    assert menu.action.offers == ("report", "callback", "voicemail")
    assert pressed(menu.state, "2", rules).action.kind == "callback"
    assert pressed(menu.state, "3", rules).action.kind == "voicemail"


def test_an_intent_that_is_no_service_keeps_the_old_after_hours(rules, classifier):
    intent = next(i for i in rules.intents if service_for_intent(rules, i.id) is None and i.department != rules.operator
                  and rules.departments[i.department].when_closed.action in ("voicemail", "callback", "message"))
    state = replace(ASKING, intent=intent.id)
    from ivr.routing.decide import route_department

    decision = route_department(state, intent.department, NIGHT, rules)
    assert decision.action.kind in ("after_hours", "transfer", "queue") and decision.state.step != "after_hours"


def test_report_by_words_the_problem_known_location_asked_then_filed(rules, classifier):
    decision = said(offered(rules, classifier).state, "report it", rules, classifier)
    assert decision.action.kind == "report_ask" and decision.action.what == "location"
    located = said(decision.state, "at 12 Elm Street", rules, classifier)
    action = located.action
    assert isinstance(action, FileReport) and action.address == "at 12 Elm Street"
    assert action.intent == "pothole" and action.department == "roads"
    assert action.service == service_for_intent(rules, "pothole").code
    assert action.description == "there is a big pothole in front of my house"
    read = filed(located, CASE, True, rules)
    spoken = f"{' '.join(CASE[:3])}, {' '.join(CASE[3:])}"
    assert read.action.kind == "case" and read.action.spoken == spoken and read.state.case == CASE
    assert read.state.step == "report_done" and read.action.first and read.action.can_text


@pytest.mark.parametrize("words", ["I don't know", "not sure", "no idea"])
def test_i_dont_know_files_the_description_only(rules, classifier, words):
    location = said(offered(rules, classifier).state, "report", rules, classifier).state
    assert said(location, words, rules, classifier).action.address is None
    assert pressed(location, "1", rules).action.address is None


def test_the_problem_asked_when_chosen_on_the_keypad_with_a_keypad_list(rules, classifier):
    roads = pressed(pressed(pressed(ASKING, "9", rules).state, "1", rules).state, "1", rules)
    problem = pressed(roads.state, "1", rules)
    assert problem.action.kind == "report_ask" and problem.action.what == "problem"
    keys = dict(problem.action.choices)
    assert list(keys) == [str(i) for i in range(1, len(keys) + 1)] and 1 <= len(keys) <= 8
    chosen = pressed(problem.state, "2", rules)
    assert chosen.action.what == "location" and chosen.state.department == "roads" and chosen.state.intent
    # Said instead, and unsure: confirmed first, as the line always does.
    unsure = said(problem.state, "pothole", rules, classifier, confidence=0.3)
    assert unsure.action.kind == "confirm" and unsure.state.step == "report_confirm"
    assert said(unsure.state, "yes", rules, classifier).action.what == "location"
    again = said(unsure.state, "no", rules, classifier)
    assert again.action.kind == "report_ask" and again.action.what == "problem"


@pytest.mark.parametrize("step", ["after_hours", "report_problem", "report_confirm", "report_location", "report_done"])
def test_an_emergency_at_any_report_step_wins(rules, classifier, step):
    state = CallState(step=step, language="en", department="roads", intent="pothole", case=CASE,
                      offers=("report", "voicemail"))
    decision = said(state, "my neighbor's house is on fire", rules, classifier)
    assert decision.action.kind == "emergency"
    heard = decide(state, Turn(speech="uh", emergency_heard="fire"), None, NIGHT, rules)
    assert heard.action.kind == "emergency"


@pytest.mark.parametrize("step", ["after_hours", "report_problem", "report_confirm", "report_location", "report_done", "alert"])
def test_zero_reaches_a_person_not_a_report(rules, step):
    state = CallState(step=step, language="en", department="roads", intent="pothole", case=CASE,
                      offers=("report", "voicemail"))
    at_night = pressed(state, "0", rules)
    assert at_night.action.kind in ("after_hours", "voicemail") and at_night.state.step != "after_hours"
    assert pressed(state, "0", rules, now=OPEN).action.kind == "operator"


def test_the_case_number_repeats_texts_and_ends(rules):
    state = CallState(step="report_done", language="en", department="roads", intent="pothole", case=CASE,
                      can_text=True)
    again = pressed(state, "*", rules)
    assert again.action.kind == "case" and not again.action.first and again.state.retries == 1
    assert decide(state, Turn(speech="could you repeat that"), None, NIGHT, rules).action.kind == "case"
    text = pressed(state, "1", rules)
    assert text.action.kind == "text_case" and text.action.case == CASE and text.state.step == "done"
    assert pressed(state, "2", rules).action.kind == "goodbye"
    # No text offer for a number that cannot get one: 1 is not a choice then.
    assert pressed(replace(state, can_text=False), "1", rules).action.kind == "case"
    # Repeats are bounded; silence reads it once more, then says goodbye.
    reads, decision = 1, pressed(state, "*", rules)
    while decision.action.kind == "case" and reads < 10:
        reads, decision = reads + 1, pressed(decision.state, "*", rules)
    assert decision.action.kind == "goodbye" and reads == MAX_CASE_READS
    silent = decide(state, Turn(), None, NIGHT, rules)
    assert silent.action.kind == "case"
    assert decide(silent.state, Turn(), None, NIGHT, rules).action.kind == "goodbye"


def test_spoken_choices_in_both_languages(rules):
    en, es = rules.language("en"), rules.language("es")
    keys = {"repeat": "*", "text": "1", "finish": "2"}
    assert interpret_choice(Turn(speech="Mándemelo por mensaje de texto"), keys, [es, en]) == "text"
    assert interpret_choice(Turn(speech="repita por favor"), keys, [es, en]) == "repeat"
    assert interpret_choice(Turn(speech="no thanks, that's all"), keys, [en, es]) == "finish"
    offer = {"report": "1", "voicemail": "2"}
    assert interpret_choice(Turn(speech="quiero dejar un mensaje"), offer, [es, en]) == "voicemail"
    assert interpret_choice(Turn(speech="I'd like to report it now"), offer, [en, es]) == "report"
    assert interpret_choice(Turn(speech="the weather is nice"), offer, [en, es]) is None
    assert interpret_choice(Turn(digits="2"), offer, [en]) == "voicemail"


# --- alerts ------------------------------------------------------------------------------------
WATER = Notice(alert_id=7, topic="water", name="water and sewer service",
               text="We know about the water main break on Elm Street; crews are on site.", can_subscribe=True)


def test_an_alert_is_heard_once_before_routing(rules, classifier):
    first = said(ASKING, "the water main broke and water is flooding the street", rules, classifier, now=OPEN, notice=WATER)
    assert first.action.kind == "alert" and first.action.text.startswith("We know about")
    assert first.state.step == "alert" and first.state.alerts_heard == (7,) and first.action.can_subscribe
    other = said(first.state, "something else", rules, classifier, now=OPEN, notice=WATER)
    assert other.action.kind in ("transfer", "confirm") and other.state.department == "water"
    # Heard already: never again on this call.
    asked = replace(other.state, step="ask")
    assert said(asked, "there is no water at my house", rules, classifier, now=OPEN, notice=WATER).action.kind != "alert"


def test_after_an_alert_updates_by_text_or_silence(rules, classifier):
    first = said(ASKING, "the water main broke and water is flooding the street", rules, classifier, now=OPEN, notice=WATER)
    sub = pressed(first.state, "2", rules, now=OPEN, notice=WATER)
    assert sub.action.kind == "subscribe" and sub.action.topic == "water" and sub.state.step == "done"
    no_text = replace(WATER, can_subscribe=False)
    assert pressed(first.state, "2", rules, now=OPEN, notice=no_text).action.kind == "alert"
    again = decide(first.state, Turn(), None, OPEN, rules, notice=WATER)
    assert again.action.kind == "alert" and again.action.reprompt == "no_input"
    done = decide(again.state, Turn(), None, OPEN, rules, notice=WATER)
    assert done.action.kind == "goodbye" and done.action.prompt == "alert_goodbye"


def test_an_emergency_is_never_held_up_by_an_alert(rules, classifier):
    decision = said(ASKING, "there is a gas leak, I smell gas", rules, classifier, now=OPEN, notice=WATER)
    assert decision.action.kind == "emergency"
