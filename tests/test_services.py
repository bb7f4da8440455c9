"""Services (intent → service code), their rules, and case numbers: the pure part (ivr.routing.services)."""
from __future__ import annotations

import itertools
import random

import pytest
from click.testing import CliRunner

from conftest import RULES_PATH
from test_rules_errors import CITY, PATH, edit, line_with, problems_of

from ivr.routing import services
from ivr.routing.load import load_rules, parse_rules
from ivr.routing.rules import NotifyTarget

SHIPPED = load_rules(RULES_PATH)

# ---- services from the rules --------------------------------------------------------------------


def test_every_intent_of_the_shipped_rules_is_a_service_or_says_it_is_none():
    assert SHIPPED.warnings == ()
    codes = [s.code for s in services.all_services(SHIPPED)]
    assert len(codes) == len(set(codes)) >= 40
    reportable = {"pothole", "streetlight_out", "water_main_break", "missed_pickup", "graffiti", "noise",
                  "abandoned_vehicle", "dead_animal", "rodents", "trees"}
    informational = {"water_bill", "property_tax", "speak_to_person", "city_hall_info", "building_permit"}
    assert reportable <= {s.intent for s in services.all_services(SHIPPED)}
    assert all(services.service_for_intent(SHIPPED, i) is None for i in informational)


def test_a_service_carries_its_department_names_and_group():
    pothole = services.service_for_intent(SHIPPED, "pothole")
    assert pothole == services.Service(code="pothole", intent="pothole", department="roads",
                                       name={"en": "Pothole", "es": "Bache"}, group="Streets and Roads")
    assert pothole.name_in("es") == "Bache" and pothole.name_in("fr") == "Pothole"
    assert "crater" in pothole.keywords
    assert services.service_by_code(SHIPPED, "pothole") == pothole
    assert services.service_by_code(SHIPPED, "nothing") is None
    assert services.service_for_intent(SHIPPED, "no_such_intent") is None


def test_without_a_service_name_the_description_names_the_service():
    rules = parse_rules(edit("    department: water\n", "    department: water\n    service_code: leak\n"), PATH)
    leak = services.service_for_intent(rules, "leak")
    assert leak is not None and leak.name == {"en": "A leak", "es": "Una fuga"}


def test_an_intent_without_a_code_is_a_warning_at_its_line_not_an_error():
    rules = parse_rules(CITY, PATH)
    lines = {w.line: w.message for w in rules.warnings}
    assert line_with(CITY, "  pothole:") in lines and line_with(CITY, "  leak:") in lines
    assert "intent 'leak' has no service_code" in lines[line_with(CITY, "  leak:")]
    assert "service_code: none" in lines[line_with(CITY, "  leak:")]
    assert services.all_services(rules) == []


def test_ivr_check_prints_the_warning_with_file_and_line(tmp_path):
    from ivr.cli import cli

    path = tmp_path / "city.yaml"
    text = edit("    department: roads\n", "    department: roads\n    service_code: none\n")
    path.write_text(text)
    result = CliRunner().invoke(cli, ["check", str(path), "--no-prompts"])
    assert result.exit_code == 0, result.output
    assert f"{path}:{line_with(text, '  leak:')}: warning: intent 'leak' has no service_code" in result.stderr
    assert "intent 'pothole'" not in result.stderr


SERVICE_CASES = [
    ("duplicate code", ("    department: roads\n", "    department: roads\n    service_code: pothole\n"),
     ("    department: water\n", "    department: water\n    service_code: pothole  # again\n"),
     "# again", "service_code 'pothole' of intent 'leak' is already the code of intent 'pothole' (line"),
    ("bad code", ("    department: water\n", "    department: water\n    service_code: Water Leak\n"), None,
     "Water Leak", "must be 1-64 lowercase letters, digits, '-', '_' or '.' (it goes in Open311 URLs), "
                   "e.g. 'water-leak'"),
    ("name without a code", ("    department: water\n", "    department: water\n    service_name: {en: L, es: F}\n"),
     None, "service_name:", "has a service_name but no service_code — add service_code: leak"),
    ("name of a none", ("    department: water\n",
                        "    department: water\n    service_code: none\n    service_name: {en: L, es: F}\n"),
     None, "service_name:", "has service_code: none, so its service_name is never used"),
    ("name missing a language", ("    department: water\n",
                                 "    department: water\n    service_code: leak\n    service_name: {en: Leak}\n"),
     None, "service_name:", "the service_name of intent 'leak' has no 'es' text"),
]


@pytest.mark.parametrize("kind, first, second, marker, message", SERVICE_CASES, ids=[c[0] for c in SERVICE_CASES])
def test_service_code_mistakes_are_reported_at_their_line(kind, first, second, marker, message):
    text = edit(*first)
    if second:
        text = edit(*second, text=text)
    problems = problems_of(text)
    assert [(p.line, message in p.message) for p in problems] == [(line_with(text, marker), True)], problems


# ---- departments.<id>.notify ----------------------------------------------------------------------

NOTIFY_OK = """    notify:
      - email: roads@city.example.gov
      - webhook: {url: "https://crm.example.gov/hooks/311", secret_env: IVR_ROADS_SECRET}
      - open311: {url: "https://crm.example.gov/open311/v2", api_key_env: IVR_CRM_KEY, service_code: "4",
                  jurisdiction_id: city.example.gov}
"""
ROADS = '    line: "+1 312 555 0101"\n'


def test_notify_targets_are_parsed():
    rules = parse_rules(edit(ROADS, ROADS + NOTIFY_OK), PATH)
    assert rules.departments["roads"].notify == (
        NotifyTarget("email", "roads@city.example.gov"),
        NotifyTarget("webhook", "https://crm.example.gov/hooks/311", secret_env="IVR_ROADS_SECRET"),
        NotifyTarget("open311", "https://crm.example.gov/open311/v2", api_key_env="IVR_CRM_KEY", service_code="4",
                     jurisdiction_id="city.example.gov"))
    assert rules.departments["water"].notify == ()


NOTIFY_CASES = [
    ("not an address", "      - email: roads-at-city\n", "roads-at-city", "is not an email address"),
    ("a secret instead of its name", '      - webhook: {url: "https://x.example.gov/h", secret_env: "s3cr3t!"}\n',
     "s3cr3t", "must be the NAME of an environment variable"),
    ("webhook without a secret", '      - webhook: {url: "https://x.example.gov/h"}\n', "webhook:",
     "is missing 'secret_env'"),
    ("not a URL", '      - open311: {url: "crm.example.gov", api_key_env: K}\n', "crm.example.gov",
     "is not an http(s) URL"),
    ("unknown kind", "      - fax: +13125550100\n", "fax:", "unknown key 'fax' in notify target 1"),
    ("two kinds in one item", '      - {email: a@b.example.gov, webhook: {url: "https://x.example.gov", secret_env: K}}\n',
     "a@b.example.gov", "must have exactly one of email, webhook, open311"),
    ("the same target twice", "      - email: a@city.example.gov\n      - email: a@city.example.gov  # twice\n",
     "# twice", "repeats an earlier one"),
]


@pytest.mark.parametrize("kind, items, marker, message", NOTIFY_CASES, ids=[c[0] for c in NOTIFY_CASES])
def test_notify_mistakes_are_reported_at_their_line(kind, items, marker, message):
    text = edit(ROADS, ROADS + "    notify:\n" + items)
    problems = problems_of(text)
    assert [(p.line, message in p.message) for p in problems] == [(line_with(text, marker), True)], problems


# ---- case numbers ---------------------------------------------------------------------------------


def test_case_numbers_are_seven_digits_never_starting_with_zero_and_valid():
    rng = random.Random(7)
    numbers = [services.new_case_number(rng) for _ in range(2000)]
    assert all(len(n) == 7 and n.isdigit() and n[0] != "0" and services.is_case_number(n) for n in numbers)
    assert len(set(numbers)) > 1990        # random, not a counter
    assert all(len(services.new_case_number(rng, 9)) == 9 for _ in range(10))
    with pytest.raises(ValueError):
        services.new_case_number(rng, 5)


def test_every_single_misheard_digit_and_every_swap_of_neighbours_is_caught():
    rng = random.Random(11)
    for number in (services.new_case_number(rng) for _ in range(200)):
        for position, digit in itertools.product(range(7), "0123456789"):
            if digit != number[position]:
                wrong = number[:position] + digit + number[position + 1:]
                assert not services.is_case_number(wrong), (number, wrong)
        for position in range(6):
            swapped = number[:position] + number[position + 1] + number[position] + number[position + 2:]
            if swapped != number:
                assert not services.is_case_number(swapped), (number, swapped)


def test_case_numbers_are_read_as_people_write_and_say_them():
    number = services.new_case_number(random.Random(3))
    spaced = f"{number[:3]} {number[3:]}"
    words_en = " ".join("zero one two three four five six seven eight nine".split()[int(d)] for d in number)
    words_es = " ".join("cero uno dos tres cuatro cinco seis siete ocho nueve".split()[int(d)] for d in number)
    for text in (number, spaced, f"{number[:3]}-{number[3:]}", f"#{number}", f"case {number}", f"Caso: {spaced}",
                 words_en, words_es.upper(), f" {number}. "):
        assert services.normalise_case_number(text) == number, text
    for text in ("", "hello", number[:-1], number + "1", "0" + number[1:], f"{number} please", None, 4827153):
        assert services.normalise_case_number(text) is None, text


def test_case_numbers_are_spoken_digit_by_digit_with_a_pause():
    number = services.new_case_number(random.Random(5))
    spoken = services.speak_case_number(number, "en")
    assert spoken == " ".join(number[:3]) + ", " + " ".join(number[3:])
    assert services.speak_case_number(f"{number[:3]}-{number[3:]}", "es") == spoken
    misheard = number[:-1] + str((int(number[-1]) + 1) % 10)
    with pytest.raises(ValueError):
        services.speak_case_number(misheard, "en")
