"""Recurring holidays: the shipped calendar keeps its 2026 days and never runs out."""
from __future__ import annotations

import json

from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from conftest import RULES_PATH
from ivr.cli import cli
from ivr.lang import builtin
from ivr.routing.hours import closure_note, closures_between, is_open, without_holidays
from ivr.routing.problems import ConfigError
from ivr.routing.load import parse_rules

CHICAGO = ZoneInfo("America/Chicago")

# The shipped file's dated list of 2026, as it was before the holidays became recurring
# (day, from, until, English name, Spanish name): the recurring rules must give exactly these.
SHIPPED_2026 = [
    ("2026-01-01", None, None, "New Year's Day", "Año Nuevo"),
    ("2026-01-19", None, None, "Martin Luther King Jr. Day", "el Día de Martin Luther King"),
    ("2026-05-25", None, None, "Memorial Day", "el Día de los Caídos"),
    ("2026-07-03", None, None, "Independence Day (observed)", "el Día de la Independencia"),
    ("2026-09-07", None, None, "Labor Day", "el Día del Trabajo"),
    ("2026-11-26", None, None, "Thanksgiving Day", "el Día de Acción de Gracias"),
    ("2026-11-27", None, None, "Day after Thanksgiving", "el día después de Acción de Gracias"),
    ("2026-12-24", "12:00", None, "Christmas Eve afternoon", "la tarde de Nochebuena"),
    ("2026-12-25", None, None, "Christmas Day", "Navidad"),
    ("2026-12-31", "15:00", None, "New Year's Eve afternoon", "la tarde de fin de año"),
    ("2027-01-01", None, None, "New Year's Day", "Año Nuevo"),
]
HEALTH_TRAINING = ("2026-10-14", "08:00", "10:00", "Staff training", "Staff training")


def listing(department, first=date(2026, 1, 1), last=date(2027, 1, 1)):
    return [(c.day.isoformat(), c.start and f"{c.start:%H:%M}", c.end and f"{c.end:%H:%M}",
             c.name_in("en"), c.name_in("es")) for c in closures_between(department, first, last)]


def test_2026_comes_out_exactly_as_the_dated_list_did(rules):
    for dept_id in ("roads", "parking", "water", "operator"):
        assert listing(rules.departments[dept_id]) == SHIPPED_2026, dept_id
    health = listing(rules.departments["health"])
    assert health == sorted(SHIPPED_2026 + [HEALTH_TRAINING])
    assert listing(rules.departments["police"]) == []          # observes_holidays: false


@pytest.mark.parametrize(("local", "holiday"), [
    (datetime(2027, 11, 25, 10, 0), "Thanksgiving Day"),
    (datetime(2027, 11, 26, 10, 0), "Day after Thanksgiving"),
    (datetime(2028, 1, 17, 10, 0), "Martin Luther King Jr. Day"),
    (datetime(2028, 7, 4, 10, 0), "Independence Day"),
    (datetime(2029, 12, 25, 10, 0), "Christmas Day"),
    (datetime(2027, 7, 5, 10, 0), "Independence Day (observed)"),     # July 4th 2027 is a Sunday
    (datetime(2027, 12, 31, 10, 0), "New Year's Day (observed)"),    # New Year's Day 2028 is a Saturday
    (datetime(2040, 5, 28, 10, 0), "Memorial Day"),                  # last Monday of May, years ahead
])
def test_future_holidays_route_as_closed(rules, local, holiday):
    now = local.replace(tzinfo=CHICAGO).astimezone(timezone.utc)
    roads = rules.departments["roads"]
    assert not is_open(roads, now)
    assert closure_note(roads, now, builtin("en")) == f"; closed today for {holiday}"
    result = CliRunner().invoke(cli, ["route", "there is a pothole on main street", "--json",
                                      "--at", local.isoformat()])
    routed = json.loads(result.output)
    assert routed["department"] == "roads" and routed["action"] == "after_hours", routed
    assert "roads closed now" in routed["reason"]               # hours, then voicemail: no dead transfer


def test_the_ordinary_day_before_is_open(rules):
    now = datetime(2027, 11, 24, 10, 0, tzinfo=CHICAGO)
    assert is_open(rules.departments["roads"], now)
    result = CliRunner().invoke(cli, ["route", "there is a pothole on main street", "--json",
                                      "--at", "2027-11-24T10:00"])
    assert json.loads(result.output)["action"] == "transfer"


@pytest.mark.parametrize(("local", "open_"), [
    (datetime(2027, 12, 24, 10, 0), False),     # Christmas 2027 is a Saturday: observed Friday 24th
    (datetime(2028, 12, 22, 11, 0), True),
    (datetime(2028, 12, 24, 11, 0), False),     # a Sunday: closed anyway
    (datetime(2029, 12, 24, 11, 59), True),     # half day: open in the morning…
    (datetime(2029, 12, 24, 12, 0), False),     # …closed from noon
    (datetime(2030, 12, 31, 14, 59), True),
    (datetime(2030, 12, 31, 15, 0), False),
])
def test_half_days_and_observed_days_recur(rules, local, open_):
    assert is_open(rules.departments["roads"], local.replace(tzinfo=CHICAGO)) is open_


def test_spanish_callers_hear_the_spanish_name_every_year(rules):
    now = datetime(2031, 12, 25, 10, 0, tzinfo=CHICAGO)
    assert closure_note(rules.departments["roads"], now, builtin("es")) == "; hoy cerrado por Navidad"


def test_every_department_that_observes_holidays_has_some_every_year(rules):
    for year in range(2026, 2060):
        days = closures_between(rules.departments["roads"], date(year, 1, 1), date(year, 12, 31))
        assert len(days) >= 9, year     # 9 when New Year's Day is observed the year before


def text_with_holidays(section: str) -> str:
    text = RULES_PATH.read_text(encoding="utf-8")
    start = text.index("  holidays:\n")
    end = text.index("\n# Departments")
    return text[:start] + section + text[end:]


CUSTOM = """  holidays:
    country: US
    subdivision: TX
    observed: false
    public:
      Independence Day:
      Juneteenth National Independence Day: {en: Juneteenth, es: el Día de la Emancipación}
    city:
      - {every: "last friday of june", name: {en: City Picnic, es: el picnic de la ciudad}}
      - {every: "03-02 + 1 day", from: "13:00", until: "15:00", name: Founders afternoon}
      - {every: "feb 29", name: Leap day}
      - {date: 2027-03-09, name: {en: Move to the new city hall, es: la mudanza}}
      - 2027-03-10 from 12:00
"""


def test_a_custom_calendar(tmp_path):
    rules = parse_rules(text_with_holidays(CUSTOM), "custom.yaml")
    roads = rules.departments["roads"]
    got = listing(roads, date(2027, 1, 1), date(2028, 12, 31))
    assert got == [
        ("2027-03-03", "13:00", "15:00", "Founders afternoon", "Founders afternoon"),
        ("2027-03-09", None, None, "Move to the new city hall", "la mudanza"),
        ("2027-03-10", "12:00", None, "", ""),
        ("2027-06-19", None, None, "Juneteenth", "el Día de la Emancipación"),   # a Saturday, not moved
        ("2027-06-25", None, None, "City Picnic", "el picnic de la ciudad"),
        ("2027-07-04", None, None, "Independence Day", "Independence Day"),
        ("2028-02-29", None, None, "Leap day", "Leap day"),
        ("2028-03-03", "13:00", "15:00", "Founders afternoon", "Founders afternoon"),
        ("2028-06-19", None, None, "Juneteenth", "el Día de la Emancipación"),
        ("2028-06-30", None, None, "City Picnic", "el picnic de la ciudad"),
        ("2028-07-04", None, None, "Independence Day", "Independence Day"),
    ]


def test_observed_both_closes_the_weekend_day_too():
    section = CUSTOM.replace("    observed: false\n", "    observed: {en: '{name} (observed)', es: '{name}'}\n"
                                                    "    observed_days: both\n")
    roads = parse_rules(text_with_holidays(section), "both.yaml").departments["roads"]
    days = {c.day.isoformat(): c.name_in("en") for c in closures_between(roads, date(2027, 6, 1), date(2027, 7, 31))}
    assert days["2027-06-18"] == "Juneteenth (observed)" and days["2027-06-19"] == "Juneteenth"
    assert days["2027-07-05"] == "Independence Day (observed)" and days["2027-07-04"] == "Independence Day"


@pytest.mark.parametrize(("section", "line_has", "message"), [
    (CUSTOM.replace("country: US", "country: XX"), "country: XX", "has no country 'XX'"),
    (CUSTOM.replace("subdivision: TX", "subdivision: ZZ"), "subdivision: ZZ", "has no subdivision 'ZZ' of 'US'"),
    (CUSTOM.replace("Independence Day:", "Independance Day:"), "Independance Day:",
     "'Independance Day' is not a public holiday of US-TX — did you mean 'Independence Day'?"),
    (CUSTOM.replace("last friday of june", "last fryday of june"), "fryday", "'fryday' in 'last fryday of june'"),
    (CUSTOM.replace("03-02 + 1 day", "02-30"), "02-30", "'02-30' in 'every' of a city day"),
    (CUSTOM.replace('until: "15:00"', 'until: "12:00"'), "Founders", "ends at 12:00, not after it starts at 13:00"),
    (CUSTOM.replace("    observed: false\n", "    observed_days: sometimes\n"), "observed_days", "must be 'instead'"),
])
def test_mistakes_are_reported_with_their_line(section, line_has, message):
    text = text_with_holidays(section)
    with pytest.raises(ConfigError) as caught:
        parse_rules(text, "bad.yaml")
    problems = caught.value.problems
    assert any(message in p.message for p in problems), [str(p) for p in problems]
    problem = next(p for p in problems if message in p.message)
    assert line_has in text.splitlines()[problem.line - 1], (problem.line, str(problem))


OLD_DATED_LIST = """  holidays:
    - {date: 2026-11-26, name: {en: "Thanksgiving Day", es: "el Día de Acción de Gracias"}}
    - {date: 2026-12-25, name: {en: "Christmas Day", es: "Navidad"}}
    - {date: 2027-01-01, name: {en: "New Year's Day", es: "Año Nuevo"}}
"""


def test_a_dated_list_still_works_until_it_runs_out():
    rules = parse_rules(text_with_holidays(OLD_DATED_LIST), "old.yaml")
    roads = rules.departments["roads"]
    assert not is_open(roads, datetime(2026, 12, 25, 10, tzinfo=CHICAGO))
    assert is_open(roads, datetime(2027, 12, 24, 10, tzinfo=CHICAGO))      # nothing said about 2027
    assert without_holidays(rules.departments.values(), date(2026, 12, 1)) == []
    missing = without_holidays(rules.departments.values(), date(2027, 1, 2))
    assert "roads" in missing and "health" in missing
    assert "police" not in missing                                  # observes_holidays: false


def test_ivr_check_warns_about_a_department_without_holidays_in_the_next_12_months(tmp_path):
    past = OLD_DATED_LIST.replace("2026-", "2020-").replace("2027-", "2021-")
    path = tmp_path / "rules.yaml"
    path.write_text(text_with_holidays(past).replace("{date: 2026-10-14,", "{date: 2021-10-14,"), encoding="utf-8")
    result = CliRunner().invoke(cli, ["check", str(path), "--no-prompts"])
    assert result.exit_code == 0, result.output                    # valid: a warning, not a failure
    warned = [line for line in result.output.splitlines() if "warning:" in line]
    assert len(warned) == 1 and "no holiday between" in warned[0], result.output
    assert "'roads'" in warned[0] and "'police'" not in warned[0]
    shipped = CliRunner().invoke(cli, ["check", str(RULES_PATH), "--no-prompts"])
    assert shipped.exit_code == 0 and "warning:" not in shipped.output


def test_ivr_holidays_lists_a_years_closures_in_the_callers_language():
    result = CliRunner().invoke(cli, ["holidays", "2027", "--lang", "es", "--rules", str(RULES_PATH)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "roads: 11 closures in 2027"
    assert "  2027-07-05 Mon  all day      el Día de la Independencia" in lines    # July 4th is a Sunday
    assert "  2027-12-31 Fri  15:00–24:00  la tarde de fin de año" in lines
    police = CliRunner().invoke(cli, ["holidays", "2027", "--department", "police", "--rules", str(RULES_PATH)])
    assert police.output.startswith("police: 0 closures in 2027 (does not observe the city's holidays)")
    wrong = CliRunner().invoke(cli, ["holidays", "--department", "nope", "--rules", str(RULES_PATH)])
    assert wrong.exit_code == 2 and "no department 'nope'" in wrong.output
