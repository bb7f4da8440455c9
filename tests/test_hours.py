"""Opening hours: time zones, DST, holidays, partial closures, overnight windows, spoken hours."""
from __future__ import annotations

from datetime import date, datetime, time, timezone

import pytest

from ivr.lang import builtin
from ivr.routing.hours import closures_between, hours_text, is_open, next_opening
from ivr.routing.rules import Closure, TimeRange
from test_decide import dept

UTC = timezone.utc


@pytest.mark.parametrize("instant,expected", [
    # Monday 9 March 2026 is the first weekday of CDT (UTC-5): 08:00 local = 13:00 UTC.
    (datetime(2026, 3, 9, 13, 30, tzinfo=UTC), True),
    # Friday 6 March 2026 is still CST (UTC-6): 13:30 UTC = 07:30 local, before opening.
    (datetime(2026, 3, 6, 13, 30, tzinfo=UTC), False),
    (datetime(2026, 3, 6, 14, 0, tzinfo=UTC), True),      # 08:00 CST, opening minute
    (datetime(2026, 3, 6, 23, 0, tzinfo=UTC), False),     # 17:00 CST, closing minute
    (datetime(2026, 3, 7, 16, 0, tzinfo=UTC), False),     # Saturday
])
def test_weekday_hours_follow_the_departments_time_zone_and_dst(instant, expected):
    assert is_open(dept("roads"), instant) is expected


def test_same_instant_differs_by_time_zone():
    instant = datetime(2026, 7, 1, 12, 30, tzinfo=UTC)   # 08:30 New York, 05:30 Los Angeles
    assert is_open(dept("east", timezone="America/New_York"), instant)
    assert not is_open(dept("west", timezone="America/Los_Angeles"), instant)


def test_whole_day_holiday_and_partial_closure():
    christmas_eve = Closure(date(2026, 12, 24), start=time(12), name="Christmas Eve afternoon")
    training = Closure(date(2026, 10, 14), start=time(8), end=time(10), name="Staff training")
    labor_day = Closure(date(2026, 9, 7), name="Labor Day")
    d = dept("health", closures=(christmas_eve, training, labor_day))
    assert not is_open(d, datetime(2026, 9, 7, 15, 0, tzinfo=UTC))      # holiday, 10:00 CDT
    assert is_open(d, datetime(2026, 12, 24, 16, 0, tzinfo=UTC))         # 10:00 CST, morning open
    assert not is_open(d, datetime(2026, 12, 24, 19, 0, tzinfo=UTC))     # 13:00 CST, closed from noon
    assert not is_open(d, datetime(2026, 10, 14, 14, 30, tzinfo=UTC))    # 09:30 CDT, training
    assert is_open(d, datetime(2026, 10, 14, 15, 0, tzinfo=UTC))         # 10:00 CDT, training over


def test_overnight_window_covers_the_small_hours_of_the_next_day():
    night = dept("night", hours={0: (TimeRange(time(22), time(6)),)})
    assert is_open(night, datetime(2026, 3, 10, 4, 0, tzinfo=UTC))       # Mon 23:00 CDT
    assert is_open(night, datetime(2026, 3, 10, 9, 0, tzinfo=UTC))       # Tue 04:00 CDT
    assert not is_open(night, datetime(2026, 3, 10, 12, 0, tzinfo=UTC))  # Tue 07:00 CDT


def test_twenty_four_hours():
    always = dept("police", hours={d: (TimeRange(time(0), time.max),) for d in range(7)})
    assert is_open(always, datetime(2026, 3, 8, 8, 0, tzinfo=UTC))       # the DST-change night
    assert hours_text(always, builtin("en")) == "Monday to Sunday, all day"


def test_next_opening_skips_the_weekend_and_holidays():
    d = dept("roads", closures=(Closure(date(2026, 3, 9), name="Test"),))
    friday_night = datetime(2026, 3, 7, 2, 0, tzinfo=UTC)                 # Fri 20:00 CST
    opening = next_opening(d, friday_night)
    assert opening is not None and (opening.date(), opening.time()) == (date(2026, 3, 10), time(8))


def test_hours_text_in_english_and_spanish():
    health = dept("health", hours={**{d: (TimeRange(time(8), time(12)), TimeRange(time(13), time(16, 30)))
                                      for d in range(5)}, 5: (TimeRange(time(9), time(13)),)})
    assert hours_text(health, builtin("en")) == "Monday to Friday, 8 AM to 12 PM and 1 PM to 4:30 PM; Saturday, 9 AM to 1 PM"
    assert hours_text(health, builtin("es")) == ("de lunes a viernes, de 8:00 a 12:00 y de 13:00 a 16:30; "
                                        "sábado, de 9:00 a 13:00")
    assert hours_text(dept("none", hours={}), builtin("es")) == "cerrado en todo momento"


def test_a_closure_is_named_in_the_callers_language():
    from ivr.routing.hours import closure_note

    thanksgiving = Closure(date(2026, 11, 26), name="Thanksgiving Day",
                           names=(("en", "Thanksgiving Day"), ("es", "el Día de Acción de Gracias")))
    roads = dept("roads", closures=(thanksgiving,))
    noon = datetime(2026, 11, 26, 18, 0, tzinfo=timezone.utc)
    assert closure_note(roads, noon, builtin("es")) == "; hoy cerrado por el Día de Acción de Gracias"
    assert closure_note(roads, noon, builtin("en")) == "; closed today for Thanksgiving Day"


def test_the_shipped_holidays_have_spanish_names():
    from pathlib import Path

    from ivr.routing.load import load_rules

    rules = load_rules(Path(__file__).resolve().parent.parent / "routing_rules.yaml")
    holidays = closures_between(rules.departments["roads"], date(2026, 1, 1), date(2031, 12, 31))
    assert holidays and all(c.name_in("es") != c.name_in("en") for c in holidays if c.name)
