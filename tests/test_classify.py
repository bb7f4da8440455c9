"""The classifier: how it reads callers, emergencies first, confidence and explanations.

Rules here are small `Rules` objects built in the test, so each behaviour is tested on its own;
accuracy against the shipped routing_rules.yaml lives in test_classify_accuracy.py.
"""
from __future__ import annotations

import pytest

from ivr.lang import builtin
from ivr.routing.classify import Classifier, interpret_language, interpret_yes_no
from ivr.routing.rules import Emergency, Intent, Rules, Thresholds


def intent(intent_id: str, department: str, keywords: list[str], examples: list[str] = (),
           es_keywords: list[str] = ()) -> Intent:
    return Intent(id=intent_id, department=department, description={"en": intent_id, "es": intent_id},
                  keywords={"en": tuple(keywords), "es": tuple(es_keywords)},
                  examples={"en": tuple(examples), "es": ()})


def make_rules(*intents: Intent, phrases: tuple[str, ...] = ("on fire", "fire", "not breathing", "breaking in",
                                                             "smell gas", "power line down")) -> Rules:
    return Rules(languages=("en", "es"), operator="operator", departments={}, intents=tuple(intents), menu=(),
                 thresholds=Thresholds(route=0.75, confirm=0.45),
                 emergency=Emergency(phrases={"en": phrases, "es": ("incendio",)}, examples={"en": (), "es": ()},
                                     advisory={"en": "Dial 911.", "es": "Marque 911."}))


CITY = make_rules(
    intent("pothole", "roads", ["pothole", "hole in the road"], ["there is a deep pothole on my street"]),
    intent("sidewalk", "roads", ["sidewalk", "curb"], ["the sidewalk is cracked"]),
    intent("streetlight", "streetlights", ["street light", "lamp post"], ["the street light is out"]),
    intent("hydrant", "water", ["fire hydrant", "hydrant"], ["the hydrant is leaking"]),
    intent("water_bill", "water", ["water bill"], ["I want to pay my water bill"]),
    intent("overgrown", "code", ["tall grass", "fire hazard", "weeds"], ["the weeds next door are huge"]),
    intent("theft", "police", ["stolen", "broke into", "broken into"], ["someone stole my bike"]),
    intent("tax", "finance", ["property tax", "tax bill"], ["I have a question about my property taxes"],
           es_keywords=["impuesto predial"]),
    intent("person", "operator", ["operator", "representative", "real person"], ["let me talk to someone"]),
)


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier(CITY)


def top_department(classifier: Classifier, text: str, language: str = "en") -> str | None:
    top = classifier.classify(text, language).top
    return top.department if top else None


def test_keyword_routes_with_high_confidence_and_names_the_word(classifier):
    result = classifier.classify("I want to report a pothole on Elm", "en")
    assert result.top.intent == "pothole" and result.top.department == "roads"
    assert result.confidence >= 0.75
    assert "'pothole'" in result.explanation and "roads" in result.explanation
    assert not result.emergency


def test_callers_fillers_do_not_get_in_the_way(classifier):
    assert top_department(classifier, "yeah hi um so there's like a pothole uh on Maple you know") == "roads"


@pytest.mark.parametrize("heard", ["there's a pot hole in front of my house",   # split compound
                                   "the pothold by the school",                    # misheard word
                                   "the potholes on my block"])                     # plural
def test_asr_slips_still_reach_the_department(classifier, heard):
    assert top_department(classifier, heard) == "roads"


def test_phrase_outweighs_its_words_and_claims_them(classifier):
    # "fire hydrant" is water; the word "fire" alone must not make it an emergency.
    result = classifier.classify("the fire hydrant on my corner is leaking", "en")
    assert result.top.department == "water" and not result.emergency
    result = classifier.classify("those weeds are a fire hazard", "en")
    assert result.top.department == "code" and not result.emergency


@pytest.mark.parametrize("text", ["my house is on fire", "there's a fire in my kitchen",
                                  "someone is not breathing", "someone is breaking in right now",
                                  "I smell gas", "a power line is down on my street"])
def test_emergency_cues_win(classifier, text):
    result = classifier.classify(text, "en")
    assert result.emergency
    assert result.top.intent is None and result.top.department is None
    assert result.explanation.startswith("emergency")


def test_misheard_emergency_word_is_still_an_emergency():
    rules = make_rules(intent("pothole", "roads", ["pothole"]), phrases=("burning", "bleeding"))
    assert Classifier(rules).classify("my house is buning", "en").emergency
    assert Classifier(rules).classify("he is bleeing a lot", "en").emergency


def test_known_words_are_not_read_as_misheard_cues():
    rules = make_rules(intent("mosquitoes", "health", ["mosquitoes"], ["the pond is breeding mosquitoes"]),
                       phrases=("bleeding",))
    assert not Classifier(rules).classify("mosquitoes are breeding in the pond", "en").emergency


def test_negated_cue_is_not_an_emergency(classifier):
    result = classifier.classify("it's not on fire but the street light is out", "en")
    assert not result.emergency and result.top.department == "streetlights"


def test_crime_after_the_fact_is_police_in_progress_is_emergency(classifier):
    past = classifier.classify("I came home and found my house was broken into", "en")
    assert not past.emergency and past.top.department == "police"
    assert classifier.classify("someone is breaking in right now", "en").emergency


def test_mixed_request_offers_both_departments_below_route(classifier):
    result = classifier.classify("my water bill and my property tax bill", "en")
    departments = [c.department for c in result.candidates]
    assert {"water", "finance"} <= set(departments[:2])
    assert result.confidence < 0.75
    assert all(0.0 <= c.confidence <= 1.0 for c in result.candidates)
    assert [c.confidence for c in result.candidates] == sorted((c.confidence for c in result.candidates), reverse=True)


def test_confidence_orders_clear_vague_and_nonsense(classifier):
    clear = classifier.classify("there's a pothole on my street", "en").confidence
    vague = classifier.classify("something about the street", "en").confidence
    nonsense = classifier.classify("purple elephant banana", "en")
    assert clear >= 0.75 > vague
    assert nonsense.candidates == () and nonsense.confidence == 0.0
    assert "no department" in nonsense.explanation


def test_empty_text_has_no_candidates(classifier):
    result = classifier.classify("", "en")
    assert result.candidates == () and not result.emergency


def test_human_request_goes_to_the_operator(classifier):
    for text in ("operator", "I want a real person", "representative please"):
        assert top_department(classifier, text) == "operator", text


def test_other_language_is_tried_when_nothing_matches(classifier):
    result = classifier.classify("tengo una pregunta sobre el impuesto predial", "en")
    assert result.top.department == "finance" and result.language == "en"


def test_bad_input_gets_a_clear_error(classifier):
    with pytest.raises(ValueError, match="unknown language 'fr'.*en, es"):
        classifier.classify("hello", "fr")
    with pytest.raises(TypeError, match="text must be a string"):
        classifier.classify(None, "en")  # type: ignore[arg-type]


@pytest.mark.parametrize("text, digits, expected", [
    ("yes", None, True), ("yeah", None, True), ("that's right", None, True), ("correct", None, True),
    ("sí", None, True), ("claro que sí", None, True), ("uh huh", None, True), ("yes please", None, True),
    ("no", None, False), ("nope", None, False), ("wrong", None, False), ("that's not right", None, False),
    ("no es correcto", None, False), ("no thank you", None, False),
    (None, "1", True), (None, "2", False), (None, "3", None), ("maybe", None, None), ("", None, None),
    (None, None, None), ("the pothole", None, None),
])
def test_interpret_yes_no(text, digits, expected):
    assert interpret_yes_no(text, digits, [builtin("en"), builtin("es")]) is expected


@pytest.mark.parametrize("text, digits, expected", [
    ("español", None, "es"), ("Spanish please", None, "es"), ("English", None, "en"), ("inglés", None, "en"),
    (None, "1", "en"), (None, "2", "es"), (None, "3", None), ("French", None, None), ("pothole", None, None),
    ("English or Spanish", None, None), (None, None, None),
])
def test_interpret_language(text, digits, expected):
    assert interpret_language(text, digits, CITY) == expected


def test_an_emergency_that_is_over_is_a_report():
    rules = make_rules(intent("animals", "animals", ["dog", "cat"]), phrases=("hit by a car",))
    over = Classifier(rules).classify("my dog got hit by a car last week and I need help with the bill", "en")
    assert not over.emergency and over.top.department == "animals"
    assert "'hit by a car' heard, but it is over ('last week')" in over.explanation
    still = Classifier(rules).classify("my dog got hit by a car last week and now a man was hit by a car", "en")
    assert still.emergency  # "now": something is happening


def test_a_place_named_after_an_emergency_word_is_not_an_emergency(classifier):
    result = classifier.classify("the street light by the fire station is out", "en")
    assert not result.emergency and result.top.department == "streetlights"
    assert classifier.classify("the fire spread to the garage", "en").emergency


def test_present_tense_keeps_an_old_start_an_emergency():
    rules = make_rules(intent("roads", "roads", ["pothole"]), phrases=("on fire",))
    assert Classifier(rules).classify("the house next door is on fire since yesterday", "en").emergency


def test_emergency_examples_catch_what_no_phrase_lists():
    rules = Rules(languages=("en",), operator="operator", departments={},
                  intents=(intent("pothole", "roads", ["pothole"]), intent("noise", "code", ["loud music"])),
                  menu=(), thresholds=Thresholds(route=0.75, confirm=0.45),
                  emergency=Emergency(phrases={"en": ()}, advisory={"en": "Dial 911."},
                                      examples={"en": ("the apartment is ablaze", "flames are everywhere")}))
    result = Classifier(rules).classify("flames everywhere, the whole apartment is ablaze", "en")
    assert result.emergency and result.top.intent is None
    assert "emergency examples" in result.explanation and "'flames'" in result.explanation
    assert not Classifier(rules).classify("there is a pothole by the apartment", "en").emergency
