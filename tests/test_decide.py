"""decide(): the conversation as a pure function, on rules built here (independent of the YAML)."""
from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time, timezone

import pytest

from ivr.routing.classify import Candidate, Classification
from ivr.routing.decide import MAX_REPROMPTS, after_dial, after_queue, decide, route_department
from ivr.routing.state import CallState, Turn
from ivr.routing.rules import (Closure, Department, Emergency, Fallback, Intent, MenuOption, Rules,
                               Thresholds, TimeRange)

CHICAGO = "America/Chicago"
WEEKDAYS = {d: (TimeRange(time(8), time(17)),) for d in range(5)}
# Tuesday 10 March 2026, 10:00 in Chicago (CDT, UTC-5): everything with weekday hours is open.
OPEN_NOW = datetime(2026, 3, 10, 15, 0, tzinfo=timezone.utc)
# Tuesday 10 March 2026, 22:00 in Chicago: weekday departments are closed.
NIGHT = datetime(2026, 3, 11, 3, 0, tzinfo=timezone.utc)


def dept(id_: str, **kw) -> Department:
    values = dict(name={"en": id_.title(), "es": id_.upper()}, line=f"+1312555{abs(hash(id_)) % 10000:04d}",
                  queue=id_, answer="transfer", timezone=CHICAGO, hours=WEEKDAYS)
    values.update(kw)
    return Department(id=id_, **values)


def make_rules(**overrides) -> Rules:
    """A small city: roads (transfer, busy → queue), parking (answers by queue), water (closed →
    callback), animals (closed → police), police (always open, busy → voicemail), operator."""
    departments = {
        "roads": dept("roads"),
        "parking": dept("parking", answer="queue"),
        "water": dept("water", when_closed=Fallback("callback")),
        "animals": dept("animals", when_closed=Fallback("department", "police")),
        "police": dept("police", hours={d: (TimeRange(time(0), time.max),) for d in range(7)},
                       when_busy=Fallback("voicemail")),
        "traffic": dept("traffic", when_busy=Fallback("department", "roads")),
        "finance": dept("finance", when_closed=Fallback("message")),
        "operator": dept("operator", line="sip:operator@pbx.example", answer="queue",
                         when_busy=Fallback("voicemail")),
    }
    values = dict(
        languages=("en", "es"), operator="operator", departments=departments,
        intents=(Intent("pothole", "roads", {"en": "a pothole", "es": "un bache"}, {"en": ("pothole",)}, {}),
                 Intent("ticket", "parking", {"en": "a parking ticket", "es": "una multa"}, {}, {})),
        menu=(MenuOption("1", {"en": "streets and parking", "es": "calles"},
                         options=(MenuOption("1", {}, department="roads"),
                                  MenuOption("2", {}, department="parking"))),
              MenuOption("2", {"en": "police", "es": "policía"}, department="police")),
        thresholds=Thresholds(route=0.75, confirm=0.45),
        emergency=Emergency({}, {}, {"en": "If this is an emergency, dial 911.", "es": "Marque 911."},
                            transfer="+13125550199"),
    )
    values.update(overrides)
    return Rules(**values)


RULES = make_rules()


def heard(text: str, department: str | None, confidence: float, *, intent: str | None = None,
          emergency: bool = False, language: str = "en") -> Classification:
    candidates = () if department is None else (Candidate(intent, department, confidence, "test"),)
    return Classification(text, language, emergency, candidates, "test")


ASKING = CallState(step="ask", asks=1, seq=2)


def test_confident_speech_routes_to_the_open_department():
    decision = decide(ASKING, Turn(speech="pothole"), heard("pothole", "roads", 0.9, intent="pothole"), OPEN_NOW, RULES)
    assert decision.action.kind == "transfer"
    assert decision.action.line == RULES.departments["roads"].line
    assert decision.state.department == "roads" and decision.state.heard == "pothole"
    assert "0.90 ≥ route" in decision.reason


def test_middling_confidence_confirms_with_the_intent_description():
    decision = decide(ASKING, Turn(speech="hole"), heard("hole", "roads", 0.6, intent="pothole"), OPEN_NOW, RULES)
    assert decision.action.kind == "confirm"
    assert decision.action.description == "a pothole"
    assert decision.state.step == "confirm"


def test_low_asr_confidence_confirms_even_a_confident_classification():
    turn = Turn(speech="pothole", asr_confidence=0.2)
    decision = decide(ASKING, turn, heard("pothole", "roads", 0.95, intent="pothole"), OPEN_NOW, RULES)
    assert decision.action.kind == "confirm"


@pytest.mark.parametrize("speech,digits,expected", [("yes", None, "transfer"), (None, "1", "transfer")])
def test_yes_routes_the_pending_department(speech, digits, expected):
    state = replace(ASKING, step="confirm", department="roads", intent="pothole")
    assert decide(state, Turn(speech=speech, digits=digits), None, OPEN_NOW, RULES).action.kind == expected


def test_no_asks_again_once_then_offers_the_menu():
    state = replace(ASKING, step="confirm", department="roads", intent="pothole")
    first = decide(state, Turn(speech="no"), None, OPEN_NOW, RULES)
    assert first.action.kind == "ask" and first.action.prompt == "ask_again"
    assert first.state.department is None
    again = replace(first.state, step="confirm", department="roads")
    second = decide(again, Turn(digits="2"), None, OPEN_NOW, RULES)
    assert second.action.kind == "menu" and second.action.path == ""


def test_no_input_reprompts_twice_then_menu_then_operator():
    state, kinds = ASKING, []
    for _ in range(MAX_REPROMPTS + 1):
        decision = decide(state, Turn(), None, OPEN_NOW, RULES)
        kinds.append(decision.action.kind)
        state = decision.state
    assert kinds == ["ask", "ask", "menu"]
    for _ in range(MAX_REPROMPTS + 1):
        decision = decide(state, Turn(), None, OPEN_NOW, RULES)
        kinds.append(decision.action.kind)
        state = decision.state
    assert kinds[3:] == ["menu", "menu", "operator"]
    assert decision.action.queue == "operator"   # the operator desk answers by queue


def test_speech_the_recogniser_could_not_hear_in_time_is_asked_again_then_the_menu():
    """Decode pool saturated or late: the caller spoke, so "please say that again", not "I heard
    nothing"; after the reprompts, the keypad menu (which needs no recogniser)."""
    state, decisions = ASKING, []
    for _ in range(MAX_REPROMPTS + 1):
        decision = decide(state, Turn(unheard="busy"), None, OPEN_NOW, RULES)
        decisions.append(decision)
        state = decision.state
    assert [d.action.kind for d in decisions] == ["ask", "ask", "menu"]
    assert (decisions[0].action.prompt, decisions[0].action.reprompt) == ("ask_again", "no_match")
    assert "speech not recognised (busy)" in decisions[0].reason
    welcome = decide(replace(ASKING, step="welcome"), Turn(unheard="late"), None, OPEN_NOW, RULES)
    assert (welcome.action.kind, welcome.action.prompt) == ("ask", "ask_again")


@pytest.mark.parametrize("step", ["welcome", "ask", "confirm", "menu", "callback"])
def test_zero_reaches_the_operator_at_every_listening_step(step):
    state = replace(ASKING, step=step, department="water")
    assert decide(state, Turn(digits="0"), None, OPEN_NOW, RULES).action.kind == "operator"


def test_emergency_never_queues_and_dials_the_emergency_line():
    decision = decide(ASKING, Turn(speech="fire"), heard("fire", None, 1.0, emergency=True), OPEN_NOW, RULES)
    assert decision.action.kind == "emergency"
    assert decision.action.dial == "+13125550199"
    # If that line fails, the operator line is dialled directly — not the operator queue.
    after = after_dial(decision.state, "no-answer", OPEN_NOW, RULES)
    assert after.action.kind == "emergency" and after.action.dial == "sip:operator@pbx.example"
    last = after_dial(after.state, "failed", OPEN_NOW, RULES)
    assert last.action.kind == "emergency" and last.action.dial is None


def test_emergency_without_transfer_line_goes_to_the_operator_line():
    rules = make_rules(emergency=Emergency({}, {}, {"en": "Dial 911."}, transfer=None))
    decision = decide(ASKING, Turn(speech="smoke"), heard("smoke", None, 1.0, emergency=True), OPEN_NOW, rules)
    assert decision.action.dial == "sip:operator@pbx.example" and decision.action.announce == "operator"


def test_language_choice_switches_to_spanish():
    decision = decide(CallState(), Turn(digits="2"), None, OPEN_NOW, RULES)
    assert decision.action.kind == "ask" and decision.state.language == "es"


def test_speech_at_the_greeting_is_treated_as_the_request():
    decision = decide(CallState(), Turn(speech="pothole"), heard("pothole", "roads", 0.9), OPEN_NOW, RULES)
    assert decision.action.kind == "transfer"


def test_menu_two_levels_with_repeat_and_invalid_key():
    top = decide(ASKING, Turn(digits="9"), None, OPEN_NOW, RULES)
    assert top.action.kind == "menu" and [d for d, _ in top.action.options] == ["1", "2"]
    group = decide(top.state, Turn(digits="1"), None, OPEN_NOW, RULES)
    assert group.action.path == "1" and group.action.options == (("1", "Roads"), ("2", "Parking"))
    repeat = decide(group.state, Turn(digits="9"), None, OPEN_NOW, RULES)
    assert repeat.action.path == "1"
    invalid = decide(group.state, Turn(digits="7"), None, OPEN_NOW, RULES)
    assert invalid.action.kind == "menu" and invalid.action.reprompt == "no_match" and invalid.state.retries == 1
    leaf = decide(group.state, Turn(digits="2"), None, OPEN_NOW, RULES)
    assert leaf.action.kind == "queue" and leaf.action.queue == "parking"


def test_closed_department_says_hours_then_voicemail():
    decision = route_department(ASKING, "roads", NIGHT, RULES)
    assert decision.action.kind == "after_hours"
    assert decision.action.then == "voicemail" and "Monday to Friday" in decision.action.hours
    assert decision.state.step == "voicemail"


def test_closed_policies_callback_department_and_message():
    assert route_department(ASKING, "water", NIGHT, RULES).action.then == "callback"
    assert route_department(ASKING, "finance", NIGHT, RULES).action.then == "goodbye"
    to_police = route_department(ASKING, "animals", NIGHT, RULES)
    assert to_police.action.kind == "transfer" and to_police.action.department == "police"


def test_holiday_closes_an_otherwise_open_department():
    holiday = Closure(date(2026, 3, 10), name="Test holiday")
    rules = make_rules(departments={**RULES.departments, "roads": dept("roads", closures=(holiday,))})
    decision = route_department(ASKING, "roads", OPEN_NOW, rules)
    assert decision.action.kind == "after_hours" and decision.action.hours.endswith("; closed today for Test holiday")


def test_operator_desk_that_already_failed_takes_a_message():
    state = replace(ASKING, tried=("operator",))
    decision = decide(state, Turn(digits="0"), None, OPEN_NOW, RULES)
    assert decision.action.kind == "voicemail" and decision.action.department == "operator"


def test_busy_policies_never_loop():
    routed = route_department(ASKING, "traffic", OPEN_NOW, RULES)
    to_roads = after_dial(routed.state, "busy", OPEN_NOW, RULES)
    assert to_roads.action.kind == "transfer" and to_roads.action.department == "roads"
    queued = after_dial(to_roads.state, "no-answer", OPEN_NOW, RULES)
    assert queued.action.kind == "queue" and queued.action.queue == "roads"
    police = route_department(ASKING, "police", OPEN_NOW, RULES)
    assert after_dial(police.state, "failed", OPEN_NOW, RULES).action.kind == "voicemail"


def test_answered_dial_ends_the_call():
    routed = route_department(ASKING, "roads", OPEN_NOW, RULES)
    assert after_dial(routed.state, "completed", OPEN_NOW, RULES).action.kind == "goodbye"


def test_leaving_the_queue_takes_a_message_for_that_department():
    queued = route_department(ASKING, "parking", OPEN_NOW, RULES)
    decision = after_queue(queued.state, "leave", RULES)
    assert decision.action.kind == "voicemail" and decision.action.department == "parking"
    assert after_queue(queued.state, "bridged", RULES).action.kind == "goodbye"


def test_callback_offer_yes_stores_a_callback_no_takes_a_message():
    state = replace(ASKING, step="callback", department="water")
    yes = decide(state, Turn(digits="1"), None, NIGHT, RULES)
    assert yes.action.kind == "callback" and yes.action.done
    assert decide(state, Turn(digits="2"), None, NIGHT, RULES).action.kind == "voicemail"


def test_naive_time_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        route_department(ASKING, "roads", datetime(2026, 3, 10, 10), RULES)
