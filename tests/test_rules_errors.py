"""Each kind of mistake an admin can make in routing_rules.yaml is reported at its line, with a fix.

Every case edits one thing in a small valid city (`CITY`) and checks the exact line and the
message. The line is found from a marker in the edited text, so the cases stay readable.
"""
from __future__ import annotations

import pytest

from ivr.routing.problems import ConfigError, Problem
from ivr.routing.load import parse_rules

PATH = "city.yaml"

CITY = """\
languages: [en, es]
operator: operator
thresholds:
  route: 0.75
  confirm: 0.45
defaults:
  timezone: America/Chicago
  hours:
    mon-fri: "08:00-17:00"
  holidays:
    - {date: 2026-12-25, name: Christmas}
departments:
  roads:
    name: {en: Roads, es: Calles}
    line: "+1 312 555 0101"
    when_busy: {department: operator}
  water:
    name: {en: Water, es: Agua}
    line: "+1 312 555 0105"
    hours:
      mon-fri: "07:00-18:00"
    closures:
      - "2026-12-24 from 12:00"
  operator:
    name: {en: Operator, es: Operadora}
    line: "sip:operator@pbx.example.gov"
    answer: queue
    whisper: "Operator call: {heard}"
menu:
  "1":
    label: {en: roads and water, es: calles y agua}
    options:
      "1": roads
      "2": water
emergency:
  advisory: {en: Dial 911., es: Marque 911.}
  transfer: "+1 312 555 0199"
  phrases:
    en: [on fire, smoke]
    es: [incendio, humo]
intents:
  pothole:
    department: roads
    digit: "1 1"
    description: {en: a pothole, es: un bache}
    keywords:
      en: [pothole]
      es: [bache]
    examples:
      en: [there is a pothole]
      es: [hay un bache]
  leak:
    department: water
    description: {en: a leak, es: una fuga}
    keywords: {en: [leak], es: [fuga]}
    examples: {en: [water is leaking], es: [hay una fuga]}
"""


def edit(old: str, new: str, text: str = CITY) -> str:
    """`text` with the one occurrence of `old` replaced (fails loudly if the case is stale)."""
    assert text.count(old) == 1, f"case text {old!r} must occur exactly once"
    return text.replace(old, new)


def line_with(text: str, marker: str) -> int:
    """1-based number of the only line containing `marker`."""
    lines = [n for n, line in enumerate(text.splitlines(), 1) if marker in line]
    assert len(lines) == 1, f"marker {marker!r} is on lines {lines}"
    return lines[0]


def problems_of(text: str) -> list[Problem]:
    with pytest.raises(ConfigError) as caught:
        parse_rules(text, PATH)
    return caught.value.problems


# (kind of mistake, old text, new text, marker on the expected line, expected message fragment)
CASES = [
    ("unknown key, suggested", 'line: "+1 312 555 0101"', 'line: "+1 312 555 0101"\n    huors: {}',
     "huors", "unknown key 'huors' in department 'roads' — did you mean 'hours'?"),
    ("key meant for elsewhere, synonym suggested", "    closures:\n", "    holidays:\n",
     "    holidays:", "unknown key 'holidays' in department 'water' — did you mean 'closures'?"),
    ("unknown top-level key", "operator: operator\n", "operator: operator\nlanguage: [en]\n",
     "language: [en]", "unknown key 'language' in the rules file — did you mean 'languages'?"),
    ("missing required key", '    line: "+1 312 555 0105"\n', "",
     "  water:", "department 'water' is missing 'line' — add a 'line:' line"),
    ("duplicate department id", "  operator:\n    name:", "  roads:  # again\n    name: {en: R, es: C}\n"
     "    line: \"+1 312 555 0100\"\n  operator:\n    name:",
     "# again", None),
    ("menu digit used twice", '      "2": water', '      "1": water',
     '"1": water', "'1' appears twice in menu option 1 (first on line"),
    ("reserved digit", '      "2": water', '      "9": water',
     '"9": water', "digit 9 in menu option 1 is reserved for repeating the menu"),
    ("not a keypad digit", '      "2": water', '      "12": water',
     '"12": water', "'12' in menu option 1 is not a keypad digit"),
    ("intent points to a missing department", "    department: water\n", "    department: waters\n",
     "department: waters", "refers to unknown department 'waters' — did you mean 'water'?"),
    ("menu points to a missing department", '"2": water', '"2": sewer',
     '"2": sewer', "menu option 1 2 refers to unknown department 'sewer'"),
    ("invalid time", '"07:00-18:00"', '"07:00-25:00"',
     "07:00-25:00", "invalid time '25:00'"),
    ("window closes before it opens", '"07:00-18:00"', '"18:00-07:00"',
     "18:00-07:00", "closes before it opens"),
    ("overlapping windows", 'mon-fri: "07:00-18:00"', 'mon-fri: ["07:00-12:00", "11:00-18:00"]',
     "mon-fri: [", "opening windows overlap"),
    ("day given twice", '      mon-fri: "07:00-18:00"\n', '      mon-fri: "07:00-18:00"\n      wed: "09:00-10:00"\n',
     "wed:", "wed is given twice"),
    ("unknown day", '      mon-fri: "07:00-18:00"', '      mon-fry: "07:00-18:00"',
     "mon-fry", "unknown day 'fry'"),
    ("bad phone number", '"+1 312 555 0105"', '"312 555 0105"',
     "312 555 0105", "is not a valid phone number — add the '+' and country code"),
    ("bad SIP URI", '"sip:operator@pbx.example.gov"', '"sip:operator"',
     "sip:operator", "is not a valid SIP URI"),
    ("unknown time zone", "America/Chicago", "America/Chicgo",
     "America/Chicgo", "unknown time zone 'America/Chicgo' in the time zone of defaults — did you mean "
                       "'America/Chicago'?"),
    ("impossible date", "2026-12-25", "2026-02-30",
     "2026-02-30", "invalid date '2026-02-30'"),
    ("closure ends before it starts", '"2026-12-24 from 12:00"', '"2026-12-24 from 12:00 until 09:00"',
     "until 09:00", "ends at 09:00, not after it starts at 12:00"),
    ("fallback loop", "    answer: queue\n", "    answer: queue\n    when_busy: {department: roads}\n",
     "when_busy: {department: operator}", "when_busy fallbacks go round in a loop (roads → operator → roads)"),
    ("fallback to a missing department", "{department: operator}", "{department: operater}",
     "operater", "when_busy of department 'roads' refers to unknown department 'operater' — did you mean "
                 "'operator'?"),
    ("fallback not allowed when closed", "    answer: queue\n", "    answer: queue\n    when_closed: queue\n",
     "when_closed: queue", "when_closed of department 'operator' cannot be 'queue' here"),
    ("department unreachable from the menu", '      "2": water\n', "",
     "  water:", "department 'water' cannot be reached from the keypad menu"),
    ("missing language text", "description: {en: a leak, es: una fuga}", "description: {en: a leak}",
     "description: {en: a leak}", "the description of intent 'leak' has no 'es' text — add 'es: …'"),
    ("text in a language not offered", "{en: Roads, es: Calles}", "{en: Roads, es: Calles, fr: Rues}",
     "fr: Rues", "unknown key 'fr' in the name of department 'roads'"),
    ("threshold out of range", "route: 0.75", "route: 1.5",
     "route: 1.5", "thresholds.route is 1.5 — it must be between 0 and 1"),
    ("route below confirm", "route: 0.75", "route: 0.3",
     "route: 0.3", "thresholds.route (0.3) is below thresholds.confirm (0.45)"),
    ("operator department missing", "operator: operator", "operator: reception",
     "operator: reception", "operator refers to unknown department 'reception'"),
    ("empty keywords", "keywords: {en: [leak], es: [fuga]}", "keywords: {en: [], es: [fuga]}",
     "keywords: {en: []", "the 'en' keywords of intent 'leak' is an empty list"),
    ("blank keyword", "      es: [bache]", '      es: [bache, ""]',
     'es: [bache, ""]', "an entry of the 'es' keywords of intent 'pothole' is empty"),
    ("intent digit disagrees with the menu", 'digit: "1 1"', 'digit: "2 1"',
     'digit: "2 1"', "department 'roads' is at '1 1' in the menu — write digit: \"1 1\""),
    ("operator intent digit is not 0", "    department: water\n", "    department: operator\n    digit: 2\n",
     "digit: 2", "department 'operator' is at '0' in the menu"),
    ("department twice in the menu", '"2": water', '"2": roads',
     '"2": roads', "department 'roads' is in the menu twice (1 1 and 1 2)"),
    ("unknown whisper placeholder", '"Operator call: {heard}"', '"Operator call: {caller_name}"',
     "caller_name", "uses unknown placeholder {caller_name}"),
    ("bad answer mode", "answer: queue", "answer: hold",
     "answer: hold", "answer of department 'operator' is 'hold' — choose transfer"),
    ("YAML syntax error", "    answer: queue\n", "    answer: queue\n   oops: [\n",
     None, "YAML syntax error"),
    ("queue name too long", "    answer: queue\n", "    answer: queue\n    queue: " + "q" * 70 + "\n",
     "qqqq", "longer than 64 characters"),
    ("keyword listed twice", "      en: [pothole]", "      en: [pothole, Pothole]",
     "[pothole, Pothole]", "'Pothole' is listed twice"),
    ("menu group without a label", '  "1":\n    label: {en: roads and water, es: calles y agua}\n',
     '  "1":  # group\n', "# group", "menu option 1 is a group and needs a 'label'"),
    ("invalid id", "  leak:\n", "  Water-Leak:\n",
     "Water-Leak", "intent id 'Water-Leak' must be lowercase letters, digits and '_'"),
    ("not a mapping", "  transfer: \"+1 312 555 0199\"\n", "  transfer: [\"+1 312 555 0199\"]\n",
     'transfer: ["', "the emergency transfer line must be text, found a list"),
    ("emergency together entry with one part", "    es: [incendio, humo]\n",
     "    es: [incendio, humo]\n  together:\n    en: [stuck alone]\n    es: [atrapado + agua]\n",
     "stuck alone", "emergency together entry 'stuck alone' needs two or more parts joined by ' + '"),
]


@pytest.mark.parametrize("kind,old,new,marker,fragment", CASES, ids=[c[0] for c in CASES])
def test_mistake_is_reported_at_its_line(kind, old, new, marker, fragment):
    text = edit(old, new)
    problems = problems_of(text)
    if marker is None:   # syntax errors: the line is wherever the parser gives up, near the edit
        edited = line_with(text, "oops")
        assert any(p.line in (edited, edited + 1) and fragment in p.message for p in problems), problems
        return
    expected = line_with(text, marker)
    if fragment is None:  # duplicate keys name the first occurrence's line
        fragment = f"'roads' appears twice in departments (first on line {line_with(CITY, '  roads:')})"
    matching = [p for p in problems if fragment in p.message]
    assert matching, f"no problem mentions {fragment!r}: {problems}"
    assert matching[0].line == expected, matching
    assert str(matching[0]).startswith(f"{PATH}:{expected}: ")


def test_there_are_at_least_fifteen_kinds_of_mistake():
    assert len({case[0] for case in CASES}) >= 15


def test_the_unedited_city_is_valid():
    rules = parse_rules(CITY, PATH)
    assert set(rules.departments) == {"roads", "water", "operator"}


def test_every_problem_is_reported_not_just_the_first():
    text = edit("America/Chicago", "Mars/Olympus")
    text = edit("route: 0.75", "route: high", text)
    text = edit('"+1 312 555 0105"', '"5550105"', text)
    problems = problems_of(text)
    messages = " | ".join(p.message for p in problems)
    assert "unknown time zone 'Mars/Olympus'" in messages
    assert "thresholds.route must be a number" in messages
    assert "'5550105' is not a valid phone number" in messages
    assert [p.line for p in problems] == sorted(p.line for p in problems)


def test_broken_default_is_reported_once_not_per_department():
    problems = problems_of(edit("America/Chicago", "Nowhere/City"))
    assert [p.message for p in problems if "time zone" in p.message or "timezone" in p.message] == [
        "unknown time zone 'Nowhere/City' in the time zone of defaults — use an IANA name such as "
        "'America/Chicago'"]


def test_department_without_hours_anywhere_says_where_to_add_them():
    text = edit('  hours:\n    mon-fri: "08:00-17:00"\n', "")
    problems = problems_of(text)
    assert [(p.line, p.message) for p in problems] == [
        (line_with(text, "  roads:"), "department 'roads' has no hours — set 'hours:' here or under 'defaults:'"),
        (line_with(text, "  operator:"),
         "department 'operator' has no hours — set 'hours:' here or under 'defaults:'"),
    ]


def test_empty_file_is_explained():
    problems = problems_of("# nothing yet\n")
    assert problems == [Problem(PATH, 0, "the file is empty — start from the shipped routing_rules.yaml")]
