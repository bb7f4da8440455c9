"""Reading texts (pure): carrier keywords, the line's commands, language cues and places."""
from __future__ import annotations

import pytest

from ivr.routing.load import load_rules
from ivr.routing.sms_commands import body_problem, detect_language, find_location, find_topic, read_command
from conftest import RULES_PATH

RULES = load_rules(RULES_PATH)


def kind(body: str, *, opted_out: bool = False) -> tuple[str, str] | None:
    command = read_command(body, RULES, opted_out=opted_out)
    return (command.kind, command.argument) if command else None


@pytest.mark.parametrize("body", ["STOP", "stop", " Stop. ", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT",
                                  "stop texting me", "PARAR", "baja"])
def test_twilio_opt_out_keywords_stop(body):
    assert kind(body) == ("stop", "")


@pytest.mark.parametrize("body", ["End of my street has a pothole", "please cancel my water shutoff",
                                  "I want to quit smoking lol"])
def test_a_keyword_inside_a_report_is_not_an_opt_out(body):
    assert kind(body) is None or kind(body)[0] != "stop"


def test_start_and_yes():
    assert kind("START") == ("start", "") and kind("unstop") == ("start", "")
    assert kind("YES") is None                       # a yes answers our question…
    assert kind("YES", opted_out=True) == ("start", "")   # …unless the number opted out
    assert kind("sí", opted_out=True) == ("start", "")


@pytest.mark.parametrize("body", ["HELP", "info", "Ayuda"])
def test_help(body):
    assert kind(body) == ("help", "")


def test_language_choice():
    assert kind("ESPAÑOL") == ("language", "es") and kind("espanol") == ("language", "es")
    assert kind("English") == ("language", "en")


def test_status_and_subscriptions():
    assert kind("STATUS 482-7153") == ("status", "482-7153")
    assert kind("estado 4827153") == ("status", "4827153")
    assert kind("status") == ("status", "")
    assert kind("SUBSCRIBE WATER") == ("subscribe", "water")
    assert kind("suscribir agua") == ("subscribe", "agua")
    assert kind("UNSUBSCRIBE water") == ("unsubscribe", "water")
    assert kind("cancelar agua") == ("unsubscribe", "agua") and kind("STOP water") == ("unsubscribe", "water")
    assert kind("TOPICS") == ("topics", "") and kind("temas") == ("topics", "")


def test_topics_are_found_by_id_keyword_or_name_in_any_language():
    assert find_topic("water", RULES).id == "water" and find_topic("AGUA", RULES).id == "water"
    assert find_topic("street lights", RULES).id == "streetlights"
    assert find_topic("baches", RULES).id == "roads"
    assert find_topic("volcanoes", RULES) is None and find_topic("", RULES) is None


@pytest.mark.parametrize("text, language", [
    ("there is a pothole on my street", "en"),
    ("hay un bache enorme en mi calle", "es"),
    ("la lámpara no prende", "es"),
    ("¿dónde pago el agua?", "es"),
    ("the light is out", "en"),
])
def test_language_cues(text, language):
    assert detect_language(text, RULES) == language


def test_no_language_cue_gives_none():
    assert detect_language("4827153", RULES) is None and detect_language("pothole", RULES) is None


@pytest.mark.parametrize("text, place", [
    ("pothole at 120 Main St, it's huge", "120 Main St"),
    ("streetlight out on Elm Street.", "Elm Street"),
    ("big pothole at the corner of Oak and 5th", "corner of Oak and 5th"),
    ("light out by 5th and Elm", "5th and Elm"),
    ("water leaking near 41.8781, -87.6298", "41.8781, -87.6298"),
    ("broken swing in the park behind the library", "behind the library"),
])
def test_places_in_english(text, place):
    assert find_location(text, RULES.language("en")) == place


def test_places_in_spanish_and_none():
    assert find_location("hay un bache en la calle Juárez frente a la escuela", RULES.language("es")).startswith("calle Juárez")
    assert find_location("there is a pothole", RULES.language("en")) is None
    assert find_location("my trash was not picked up", RULES.language("en")) is None


@pytest.mark.parametrize("body, media, problem", [
    ("", 0, "empty"), ("   ", 0, "empty"), ("", 1, "media_only"), ("😡😡😡", 0, "no_words"),
    ("x" * 1601, 0, "too_long"), ("pothole", 0, None), ("😡 pothole", 2, None),
])
def test_unreadable_bodies(body, media, problem):
    assert body_problem(body, media) == problem
