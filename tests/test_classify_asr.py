"""The classifier on text as recognisers produce it (issue 9 item 7).

Near-miss emergency wording, homophones and dropped or split words, numbers said as words.
Sets (tests/data/first_measured.md has when each was first measured and what it scored then):
- `utterances_asr_dev_en` — written to be tuned on;
- `utterances_asr_en` / `_es` — measured before any change (19/30 and 3/4 emergencies), not tuned on;
- `utterances_asr_holdout_en` — written before the tuning, run once after it: 27/30 routed right,
  17/20 emergencies, 2 false emergencies (the classifier before the change: 27/30, 14/20, 2).
The bars below are those first figures, so a change that loses ground fails.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ivr.lang import builtin
from ivr.routing.classify import Classifier
from ivr.routing.load import load_rules
from ivr.routing.text import surface_tokens

DATA = Path(__file__).resolve().parent / "data"
#: name → (file, language, top-1 bar, emergency recall bar, false emergencies allowed)
SETS = {
    "asr_dev_en": ("utterances_asr_dev_en.jsonl", "en", 0.80, 1.0, 0),   # 22/26: 4 labels the rules do not cover
    "asr_en": ("utterances_asr_en.jsonl", "en", 0.95, 29 / 30, 0),
    "asr_es": ("utterances_asr_es.jsonl", "es", 0.95, 1.0, 0),
    "asr_holdout_en": ("utterances_asr_holdout_en.jsonl", "en", 0.90, 17 / 20, 2),
}


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier(load_rules(Path(__file__).resolve().parent.parent / "routing_rules.yaml"))


@pytest.mark.parametrize("name", SETS)
def test_recogniser_style_sets(classifier, name):
    path, language, top1_bar, recall_bar, false_allowed = SETS[name]
    cases = [json.loads(line) for line in (DATA / path).read_text(encoding="utf-8").splitlines() if line.strip()]
    ordinary = [c for c in cases if "department" in c]
    emergencies = [c for c in cases if c.get("action") == "emergency"]
    readings = {c["text"]: classifier.classify(c["text"], language) for c in cases}
    wrong = [f"{c['text']!r}: want {c['department']}, got "
             f"{'EMERGENCY' if readings[c['text']].emergency else readings[c['text']].top and readings[c['text']].top.department}"
             for c in ordinary if readings[c["text"]].emergency or readings[c["text"]].top is None
             or readings[c["text"]].top.department != c["department"]]
    missed = [c["text"] for c in emergencies if not readings[c["text"]].emergency]
    false_alarms = [c["text"] for c in ordinary if readings[c["text"]].emergency]
    assert 1 - len(wrong) / len(ordinary) >= top1_bar, "\n".join(wrong)
    assert 1 - len(missed) / len(emergencies) >= recall_bar - 1e-9, missed
    assert len(false_alarms) <= false_allowed, false_alarms


@pytest.mark.parametrize("text", [
    "someone is trying to break through my window right now",     # the two examples
    "someone is being stabbed outside my house",
    "my kitchen is on far",                                        # "fire" misheard
    "my father is not breeding",                                   # "breathing" misheard
    "somebody is trying to brake in",                              # homophone
    "some one is breaking in to my house",                         # split words
    "a man with a pistol is outside",
    "please hurry i am hiding in the bathroom",                    # danger told by what the caller does
    "the kid fell through the eyes on the lake",                   # "ice" misheard
    "the whole basement smells like rotten eggs",                  # gas, told by its smell
    "my son drank bleach",
])
def test_near_miss_and_misheard_emergencies(classifier, text):
    result = classifier.classify(text, "en")
    assert result.emergency, result.explanation


@pytest.mark.parametrize("text, department", [
    ("how far is the nearest pool", "parks"),                      # "far" alone is not "fire"
    ("the kids keep climbing into the pool after hours", "parks"),
    ("my car was towed and has been parked at the lot for weeks", "parking"),   # "been" is not "bin"
    ("i need a permit for a pistol range", None),                  # a thing, not an event
])
def test_sound_alikes_do_not_raise_false_alarms(classifier, text, department):
    result = classifier.classify(text, "en")
    assert not result.emergency, result.explanation
    if department:
        assert result.top.department == department


def test_a_sound_alike_counts_only_as_probably_misheard(classifier):
    result = classifier.classify("my car got toad from in front of my house", "en")
    assert result.top.department == "parking"
    assert "towed" in result.explanation or "misheard" in result.explanation


@pytest.mark.parametrize("said, heard", [
    ("my bill is three hundred and forty dollars", ["my", "bill", "is", "340", "dollars"]),
    ("ticket number one two three four five", ["ticket", "number", "12345"]),
    ("twenty five hundred dollars", ["2500", "dollars"]),
    ("the one on the corner", ["the", "one", "on", "the", "corner"]),   # a pronoun stays a word
])
def test_numbers_said_as_words_become_digits(said, heard):
    assert surface_tokens(said, builtin("en")) == heard


def test_spanish_numbers_and_articles():
    spanish = builtin("es")
    assert surface_tokens("treinta y cinco dólares", spanish) == ["35", "dolares"]
    assert surface_tokens("un bache enorme", spanish) == ["un", "bache", "enorme"]


def test_number_words_are_no_evidence(classifier):
    plain = classifier.classify("my water bill is too high", "en")
    spoken = classifier.classify("my water bill is four hundred and seventy five dollars", "en")
    assert spoken.top.department == plain.top.department == "water"


# -- emergencies told as two ordinary facts (the rules' `together` entries) ------------------------
@pytest.mark.parametrize("text, language", [
    ("we are trapped in the car on the ramp and the water keeps rising", "en"),
    ("i am stuck under the bridge in my car and water is coming in the doors", "en"),
    ("the hallway smells like rotten eggs and my son is dizzy", "en"),
    ("my dad says his chest really hurts", "en"),
    ("two guys are fighting in the parking lot right now", "en"),
    ("the carbon monoxide alarm keeps going off and we all have a headache", "en"),
    ("estamos atrapados en el carro y sube el agua", "es"),
    ("a mi mamá le duele mucho el pecho", "es"),
])
def test_two_ordinary_facts_together_are_an_emergency(classifier, text, language):
    result = classifier.classify(text, language)
    assert result.emergency, result.explanation
    assert "+" in result.explanation


@pytest.mark.parametrize("text, department", [
    ("my car got stuck in the snow because the street was never plowed", "roads"),
    ("water is coming in through the basement drain", "water"),
    ("my tap water smells like rotten eggs", "water"),
    ("we are not trapped but there is water over the road", "roads"),
    ("kids keep breaking the windows of the empty house", "police"),
    ("the water from our kitchen tap smells like rotten eggs", "water"),   # the water's smell, not gas
    ("the lamp at the bus shelter on my corner is out", "streetlights"),  # a bus shelter, not the animal one
])
def test_one_of_the_facts_alone_is_not_an_emergency(classifier, text, department):
    result = classifier.classify(text, "en")
    assert not result.emergency, result.explanation
    assert result.top is not None and result.top.department == department, result.explanation


# -- street names are not requests -------------------------------------------------------------
def test_a_street_name_and_its_suffix_are_dropped_but_the_common_noun_stays():
    english = builtin("en")
    assert surface_tokens("a dead deer on Orchard Road", english) == ["a", "dead", "deer", "on"]
    assert surface_tokens("the road by the school is cracked", english)[:2] == ["the", "road"]
    assert surface_tokens("the cracked road", english) == ["the", "cracked", "road"]


def test_an_address_on_a_road_does_not_pull_the_call_to_roads(classifier):
    result = classifier.classify("there is a dead raccoon in front of forty two Orchard Road", "en")
    assert result.top.department == "animals", result.explanation


def test_no_keyword_of_the_shipped_rules_loses_a_word_to_the_street_name_rule():
    """A keyword like "cracked road" would shrink to "road" (a roads keyword every address on a Road
    would match): each word a keyword puts before a street suffix belongs in `not_a_street_name`."""
    rules = load_rules(Path(__file__).resolve().parent.parent / "routing_rules.yaml")
    shrunk = []
    for language in rules.languages:
        lang = rules.language(language)
        for intent in rules.intents:
            for keyword in intent.keywords.get(language, ()):
                said = [w for w in keyword.lower().replace("'", " ").split() if w.isalpha()]
                if len(surface_tokens(keyword, lang)) < len([w for w in said if w not in lang.fillers]):
                    shrunk.append(f"{language} {intent.id}: {keyword!r} → {surface_tokens(keyword, lang)}")
    assert not shrunk, shrunk


# -- words a recogniser splits or merges ------------------------------------------------------
def test_a_cue_word_split_in_two_is_still_heard(classifier):
    result = classifier.classify("la casa de al lado se está que mando", "es")
    assert result.emergency, result.explanation


def test_two_words_written_as_one_are_read_apart(classifier):
    result = classifier.classify("hay un gatomuerto en la calle", "es")
    assert result.top.department == "animals", result.explanation


def test_a_real_word_is_never_taken_apart(classifier):
    result = classifier.classify("I want to rent the shelter for a birthday party", "en")
    assert result.top.department == "parks", result.explanation


@pytest.mark.parametrize("text, department", [
    ("hay mucho humor saliendo del edificio", None),               # "humo" misheard: an emergency
    ("tiraron vasura en el callejón", "sanitation"),               # b/v: "basura"
    ("hay un vache enorme en mi calle", "roads"),
])
def test_spanish_sound_alikes_and_misheard_runs(classifier, text, department):
    result = classifier.classify(text, "es")
    if department is None:
        assert result.emergency, result.explanation
    else:
        assert not result.emergency and result.top.department == department, result.explanation
