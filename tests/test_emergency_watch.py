"""The emergency watch's verdict (ivr.speech.emergency) and how the decision uses it. Pure, no audio:
the real-audio side is in test_engine_pocketsphinx.py."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from ivr.routing.decide import decide
from ivr.routing.state import CallState, Turn
from ivr.speech.emergency import emergency_in_alternatives, supported_cues
from ivr.speech.engines.base import Result

MONDAY_10AM = datetime(2026, 3, 2, 16, 0, tzinfo=timezone.utc)


def heard(text: str, *alternatives: str) -> Result:
    return Result(text, 0.5, alternatives=alternatives)


def test_a_multi_word_cue_in_an_alternative_is_an_emergency(classifier):
    result = heard("the trail fell on the pole", "the trail fell in the pool")
    why = emergency_in_alternatives(classifier, result, "en")
    assert why is not None and "'fell in the pool'" in why and "the trail fell in the pool" in why


def test_a_lone_one_word_cue_is_not_enough(classifier):
    # What the biased model made of "the deli on Main Street had mouse droppings".
    assert classifier.classify("the deli on the street and lost robbing", "en").emergency
    result = heard("the deli", "the deli on the street and lost robbing")
    assert emergency_in_alternatives(classifier, result, "en") is None


def test_two_one_word_cues_are_enough():
    assert supported_cues(["gun", "shooting"]) and supported_cues(["on fire"])
    assert not supported_cues(["gun", "gun"]) and not supported_cues(["robbing"])


def test_no_alternatives_or_no_result_means_no_verdict(classifier):
    assert emergency_in_alternatives(classifier, heard("my house is on fire"), "en") is None
    assert emergency_in_alternatives(classifier, None, "en") is None


def test_a_negated_alternative_is_not_an_emergency(classifier):
    assert emergency_in_alternatives(classifier, heard("x", "the house is not on fire"), "en") is None


@pytest.mark.parametrize("step, expected", [("ask", "emergency"), ("confirm", "emergency"), ("menu", "menu")])
def test_the_decision_treats_the_verdict_like_a_heard_emergency(rules, step, expected):
    state = CallState(step=step, language="en", department="roads" if step == "confirm" else None)
    turn = Turn(speech="the trail fell on the pole", emergency_heard="watch heard 'fell in the pool'")
    decision = decide(state, turn, None, MONDAY_10AM, rules)
    assert decision.action.kind == expected
    if expected == "emergency":
        assert "fell in the pool" in decision.reason
