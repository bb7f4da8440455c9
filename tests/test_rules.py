"""The shipped routing_rules.yaml implements the default city, and the loader builds it faithfully."""
from __future__ import annotations

import json
import re
from datetime import date, time

import pytest

from conftest import DATA_DIR, RULES_PATH
from ivr.routing.hours import closures_on
from ivr.routing.problems import ConfigError
from ivr.routing.rules import Closure, Fallback, TimeRange
from ivr.routing.load import load_rules, parse_rules


def city_department_ids() -> list[str]:
    """The ids in the table of the city's departments.md (a copy of shared/city/departments.md)."""
    table = (DATA_DIR / "departments.md").read_text(encoding="utf-8")
    return [i for i in re.findall(r"^\| ([a-z]+) \|", table, flags=re.MULTILINE) if i != "id"]


def test_all_city_departments_are_shipped(rules):
    ids = city_department_ids()
    assert len(ids) == 14
    assert sorted(rules.departments) == sorted(ids)
    assert rules.operator == "operator"
    assert rules.languages == ("en", "es")


def test_every_department_is_in_the_menu_once_and_0_is_the_operator(rules):
    paths = {dept: rules.menu_path(dept) for dept in rules.departments}
    assert paths["operator"] == "0"
    assert paths["roads"] == "1 1"
    assert paths["health"] == "5"
    assert "" not in paths.values()
    assert rules.menu_path("no_such_department") == ""
    assert len(set(paths.values())) == len(paths)
    others = [digit for dept, path in paths.items() if dept != "operator" for digit in path.split()]
    assert not {"0", "9"} & set(others)        # reserved: operator and repeat


def test_every_department_has_intents_with_both_languages(rules):
    by_department = {dept: [i for i in rules.intents if i.department == dept] for dept in rules.departments}
    assert all(len(intents) >= 3 for intents in by_department.values()), {
        d: len(i) for d, i in by_department.items()}
    for intent in rules.intents:
        for lang in rules.languages:
            assert intent.description[lang] and intent.keywords[lang]
            assert len(intent.examples[lang]) >= 4, (intent.id, lang)


def test_no_development_utterance_is_copied_into_the_examples(rules):
    """Accuracy is judged on the dev set and on unseen utterances, so examples must not memorise it."""
    dev = {json.loads(line)["text"].lower()
           for line in (DATA_DIR / "dev_utterances_en.jsonl").read_text(encoding="utf-8").splitlines()
           if line.strip()}
    shipped = {e.lower() for i in rules.intents for e in i.examples["en"]} | {
        e.lower() for e in rules.emergency.examples["en"]}
    assert not dev & shipped
    # Nor padded copies ("… baseball field" + " on saturday"): a sentence of four words or more
    # standing whole inside an example is the same memorisation.
    padded = sorted(f"{d!r} in {e!r}" for d in dev if len(d.split()) >= 4 for e in shipped if d in e)
    assert not padded


def test_emergency_section(rules):
    emergency = rules.emergency
    assert "911" in emergency.advisory["en"].replace(" ", "")
    assert "911" in emergency.advisory["es"].replace(" ", "")
    assert emergency.transfer == "+13125550199"
    for lang in ("en", "es"):
        assert len(emergency.phrases[lang]) >= 10 and len(emergency.examples[lang]) >= 8


def test_defaults_are_inherited_and_overridden(rules):
    roads, health, police = rules.departments["roads"], rules.departments["health"], rules.departments["police"]
    assert roads.timezone == "America/Chicago"
    assert roads.hours[0] == (TimeRange(time(7), time(17)),)
    assert 5 not in roads.hours and 6 not in roads.hours          # weekend closed
    assert rules.departments["streetlights"].hours[4] == (TimeRange(time(8), time(17)),)  # from defaults
    assert health.hours[2] == (TimeRange(time(8), time(12)), TimeRange(time(13), time(16, 30)))
    christmas = Closure(date(2026, 12, 25), name="Christmas Day", names=(("en", "Christmas Day"), ("es", "Navidad")))
    assert closures_on(roads, date(2026, 12, 25)) == (christmas,)   # the city's holidays, every year
    (eve,) = closures_on(roads, date(2026, 12, 24))
    assert (eve.start, eve.end, eve.name_in("en")) == (time(12), None, "Christmas Eve afternoon")
    assert Closure(date(2026, 10, 14), time(8), time(10), "Staff training") in health.closures
    assert police.closures == () and police.holidays is None        # observes_holidays: false
    assert closures_on(police, date(2026, 12, 25)) == ()
    assert police.hours[6] == (TimeRange(time(0), time.max),)       # 24:00 closes at the end of the day


def test_lines_fallbacks_and_answer_modes(rules):
    departments = rules.departments
    assert departments["roads"].line == "+13125550101"            # spaces removed: E.164
    assert departments["operator"].line.startswith("sip:")
    assert departments["operator"].answer == "queue" and departments["roads"].answer == "transfer"
    assert departments["water"].when_closed == Fallback("transfer", "+13125550150")
    assert departments["animals"].when_closed == Fallback("department", "police")
    assert departments["traffic"].when_busy == Fallback("department", "roads")
    assert departments["finance"].when_closed == Fallback("message")
    assert departments["roads"].when_busy == Fallback("queue")
    assert departments["roads"].queue == "roads"
    assert "{heard}" in departments["roads"].whisper


def test_menu_labels_are_localized(rules):
    group = rules.menu[0]
    assert group.digit == "1" and group.department is None
    assert [o.department for o in group.options] == ["roads", "streetlights", "traffic", "parking"]
    assert group.options[0].label == {"en": "Streets and Roads", "es": "Calles y Carreteras"}
    assert set(group.label) == {"en", "es"}


def test_text_form_closures_and_yaml_typing_pitfalls():
    """'no' stays text (not False) and unquoted 8:00 stays a time (not 480 seconds)."""
    text = RULES_PATH.read_text(encoding="utf-8")
    text = text.replace("    city:\n", "    city:\n      - 2026-01-02 from 8:00 until 9:30\n", 1)
    text = text.replace("es: [pregunta, pregunta general, no sé,", "es: [no, pregunta general, no sé,", 1)
    rules = parse_rules(text, "edited.yaml")
    assert closures_on(rules.departments["roads"], date(2026, 1, 2)) == (Closure(date(2026, 1, 2), time(8), time(9, 30)),)
    assert rules.intent("general_question").keywords["es"][0] == "no"


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_rules(tmp_path / "nope.yaml")
    (problem,) = caught.value.problems
    assert problem.line == 0 and "cannot read the rules file" in problem.message
