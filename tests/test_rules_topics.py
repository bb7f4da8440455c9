"""The `topics:` section: parsed with the rules, every mistake reported at its line with a fix."""
from __future__ import annotations

import pytest

from ivr.routing.load import load_rules, parse_rules
from ivr.routing.problems import ConfigError
from conftest import RULES_PATH
from test_rules_errors import CITY, PATH, line_with

TOPICS = """\
topics:
  water:
    name: {en: water service, es: servicio de agua}
    keywords: {en: [water], es: [agua]}
    intents: [leak]
    department: water
  roads:
    name: {en: roads, es: calles}
    keywords: {en: [road, potholes], es: [calles, baches]}
    intents: [pothole]
    department: roads
"""


def problems(topics: str) -> list[tuple[int, str]]:
    text = CITY + topics
    with pytest.raises(ConfigError) as caught:
        parse_rules(text, PATH)
    return [(p.line, p.message) for p in caught.value.problems]


def test_topics_are_parsed_in_file_order_and_found_by_intent():
    rules = parse_rules(CITY + TOPICS, PATH)
    assert [t.id for t in rules.topics] == ["water", "roads"]
    water = rules.topic("water")
    assert water is not None and water.department == "water" and water.intents == ("leak",)
    assert water.keywords == {"en": ("water",), "es": ("agua",)}
    assert rules.topic_for_intent("pothole").id == "roads"
    assert rules.topic_for_intent("nothing") is None and rules.topic("sewer") is None


def test_the_section_is_optional():
    assert parse_rules(CITY, PATH).topics == ()


def test_the_shipped_rules_give_every_topic_a_department_and_the_city_basics():
    rules = load_rules(RULES_PATH)
    ids = {t.id for t in rules.topics}
    assert {"water", "streetlights", "roads", "parks"} <= ids
    for topic in rules.topics:
        assert topic.department in rules.departments
        assert all(rules.intent(i) for i in topic.intents)


@pytest.mark.parametrize("old, new, marker, message", [
    ("intents: [leak]", "intents: [leek]", "[leek]", "the intents of topic 'water' names unknown intent 'leek' — did you mean 'leak'?"),
    ("    department: water\n  roads", "    department: sewer\n  roads", "department: sewer",
     "the department of topic 'water' refers to unknown department 'sewer'"),
    ("    keywords: {en: [water], es: [agua]}\n", "", "  water:", "topic 'water' is missing 'keywords'"),
    ("keywords: {en: [water], es: [agua]}", "keywords: {en: [water]}", "keywords: {en: [water]}",
     "keywords of topic 'water' has no 'es' text"),
    ("intents: [pothole]", "intents: [pothole, leak]", "  roads:",
     "intent 'leak' is in topic 'water' and topic 'roads' — keep it in one"),
    ("{en: [road, potholes]", "{en: [water, potholes]", "  roads:",
     "keyword 'water' (en) names topic 'water' and topic 'roads' — keep it in one"),
    ("{en: [road, potholes]", "{en: [STOP, potholes]", "  roads:",
     "keyword 'STOP' of topic 'roads' is an SMS command word"),
    ("  roads:\n", "  Roads:\n", "  Roads:", "topic id 'Roads' must be lowercase"),
    ("    department: roads\n", "    department: roads\n    dept: roads\n", "dept: roads",
     "unknown key 'dept' in topic 'roads' — did you mean 'department'?"),
])
def test_each_mistake_is_reported_at_its_line(old, new, marker, message):
    assert TOPICS.count(old) == 1
    topics = TOPICS.replace(old, new)
    found = problems(topics)
    line = len(CITY.splitlines()) + line_with(topics, marker)
    assert any(n == line and message in text for n, text in found), found


def test_ivr_check_prints_file_and_line(tmp_path):
    from click.testing import CliRunner

    from ivr.cli import cli

    path = tmp_path / "rules.yaml"
    path.write_text(RULES_PATH.read_text(encoding="utf-8").replace(
        "intents: [streetlight_out,", "intents: [streetlight_gone,"), encoding="utf-8")
    result = CliRunner().invoke(cli, ["check", str(path), "--no-prompts"])
    assert result.exit_code == 1
    line = line_with(path.read_text(encoding="utf-8"), "streetlight_gone")
    assert f"{path}:{line}: the intents of topic 'streetlights' names unknown intent 'streetlight_gone'" in result.stderr
