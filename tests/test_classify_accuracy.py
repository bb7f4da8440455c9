"""Accuracy of the classifier with the shipped routing_rules.yaml, per labelled set.

The bar (from the issue): ≥ 95 % top-1 department, every emergency recognised, and no emergency
for an ordinary request. Sets: the shared dev set; our own English and Spanish callers (written
before tuning, then tuned on); three hold-out sets (two English, one Spanish), each written after a round of tuning.
Measured on them before any fix: holdout_en 87.8 % top-1, holdout2_en 88.4 % top-1 with 2 missed
emergencies and 3 false ones, holdout_es 94.7 % with 1 missed — the honest estimate for unseen callers. Their fixes were general
vocabulary and the "it is over" rule, and their bar stays at 90 %.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ivr.routing.classify import Classifier
from ivr.routing.load import load_rules

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
SETS = {
    "dev_en": (ROOT / "tests" / "data" / "dev_utterances_en.jsonl", "en", 0.95),
    "ours_en": (DATA / "utterances_en.jsonl", "en", 0.95),
    "ours_es": (DATA / "utterances_es.jsonl", "es", 0.95),
    "holdout_en": (DATA / "utterances_holdout_en.jsonl", "en", 0.90),
    "holdout2_en": (DATA / "utterances_holdout2_en.jsonl", "en", 0.90),
    "holdout_es": (DATA / "utterances_holdout_es.jsonl", "es", 0.90),
}


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier(load_rules(ROOT / "routing_rules.yaml"))


def load(path: Path) -> list[dict]:
    if not path.exists():
        pytest.fail(f"labelled set missing: {path}")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.parametrize("name", SETS)
def test_top1_department_accuracy(classifier, name):
    path, language, bar = SETS[name]
    cases = [c for c in load(path) if "department" in c]
    misses = []
    for case in cases:
        result = classifier.classify(case["text"], case.get("lang", language))
        top = next((c for c in result.candidates if c.intent is not None), None)
        if result.emergency or top is None or top.department != case["department"]:
            misses.append(f"{case['text']!r}: want {case['department']}, got "
                          f"{'EMERGENCY' if result.emergency else top and top.department} ({result.explanation})")
    accuracy = 1 - len(misses) / len(cases)
    assert accuracy >= bar, f"{name}: {accuracy:.1%} < {bar:.0%}\n" + "\n".join(misses)


@pytest.mark.parametrize("name", SETS)
def test_every_emergency_is_recognised(classifier, name):
    path, language, _ = SETS[name]
    cases = [c for c in load(path) if c.get("action") == "emergency"]
    assert cases, f"{name} has no emergency cases"
    missed = [c["text"] for c in cases if not classifier.classify(c["text"], c.get("lang", language)).emergency]
    assert missed == []


@pytest.mark.parametrize("name", SETS)
def test_no_emergency_for_ordinary_requests(classifier, name):
    path, language, _ = SETS[name]
    flagged = [(c["text"], classifier.classify(c["text"], c.get("lang", language)).explanation)
               for c in load(path) if "department" in c
               and classifier.classify(c["text"], c.get("lang", language)).emergency]
    assert flagged == []


@pytest.mark.parametrize("text, department", [
    ("a fire hydrant is leaking on the corner", "water"),
    ("the overgrown weeds on the corner lot are a fire hazard", "code"),
    ("I came home and found my house was broken into", "police"),
    ("someone broke into my car last night", "police"),
    ("my gas bill seems way too high", "finance"),
    ("the fireworks next door are so loud", "code"),
    ("I want to fight a parking ticket", "parking"),
    ("is the clinic giving free flu shots", "health"),
    ("the dead tree in the park looks like it will fall", "parks"),
    ("I need a copy of the accident report", "police"),
])
def test_emergency_words_in_ordinary_requests(classifier, text, department):
    result = classifier.classify(text, "en")
    assert not result.emergency, result.explanation
    assert result.top.department == department


@pytest.mark.parametrize("text", [
    "someone is breaking into my house right now", "my house is on fire", "there's smoke everywhere upstairs",
    "my husband collapsed and isn't breathing", "a downed power line is sparking in the street",
    "I smell gas in the basement", "a man with a knife is outside my door", "mi casa se está quemando",
])
def test_emergencies_described_differently(classifier, text):
    language = "es" if "casa" in text else "en"
    assert classifier.classify(text, language).emergency


@pytest.mark.parametrize("name", SETS)
def test_no_labelled_utterance_is_a_shipped_example(name):
    """A set the classifier learned verbatim measures memory, not accuracy."""
    rules = load_rules(ROOT / "routing_rules.yaml")
    path, language, _ = SETS[name]
    shipped = {e.lower() for i in rules.intents for e in i.examples.get(language, ())}
    shipped |= {e.lower() for e in rules.emergency.examples.get(language, ())}
    copied = sorted(c["text"] for c in load(path) if c["text"].lower() in shipped)
    assert not copied, f"{name}: rephrase or remove these examples from routing_rules.yaml: {copied}"
