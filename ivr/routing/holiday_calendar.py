"""The city's holidays for any year: a country's public holidays the city chose, plus its own days. Pure.

The public holidays come from the `holidays` library (Open World Holidays Framework), which
knows each country's and subdivision's rules, including which weekday a holiday falling on a
weekend is observed on. The library only computes; nothing here reads files, the network or
the clock, so the routing core stays free of I/O.

`HolidayCalendar.closures_on(day)` answers "is the city closed on this day, and why" for every
year, so the rules never run out of holidays the way a list of dates does.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, time, timedelta
from functools import lru_cache
from typing import Iterator

import holidays as owhf

from ivr.routing.rules import Closure

Names = tuple[tuple[str, str], ...]     # (language, name) pairs; "" as the language means any

# How the library names the weekday a weekend holiday is observed on, in its default language.
_OBSERVED = re.compile(r"^(?P<base>.*) \(observed(?:, estimated)?\)$")
# A weekend holiday's observed weekday lies within a few days of it (Saturday → Friday, Sunday →
# Monday, or Tuesday after a Monday holiday in some countries).
_OBSERVED_WITHIN = timedelta(days=3)
#: The library calendar's years searched when checking that a chosen holiday name exists.
NAME_CHECK_YEARS = range(2024, 2036)


@dataclass(frozen=True)
class YearlyDay:
    """A day of the city's own every year: a fixed date or the nth weekday of a month, ± days.

    `weekday` None: the fixed date month/day. Otherwise the `nth` (1-5, or -1 for the last)
    `weekday` (0 = Monday) of `month`. `offset` days are added (the day after Thanksgiving is
    the 4th Thursday of November + 1 day). `start`/`end` make it a part-day closure.
    """
    month: int
    day: int | None = None
    weekday: int | None = None
    nth: int | None = None
    offset: int = 0
    start: time | None = None
    end: time | None = None
    names: Names = ()

    def date_in(self, year: int) -> date | None:
        """This year's date; None when it does not exist that year (Feb 29, a 5th Monday)."""
        if self.weekday is None:
            try:
                return date(year, self.month, self.day or 1) + timedelta(days=self.offset)
            except ValueError:
                return None
        assert self.nth is not None
        if self.nth > 0:
            first = date(year, self.month, 1)
            found = first + timedelta(days=(self.weekday - first.weekday()) % 7 + 7 * (self.nth - 1))
        else:
            next_month = date(year + self.month // 12, self.month % 12 + 1, 1)
            last = next_month - timedelta(days=1)
            found = last - timedelta(days=(last.weekday() - self.weekday) % 7)
        if found.month != self.month:
            return None
        return found + timedelta(days=self.offset)


@dataclass(frozen=True)
class HolidayCalendar:
    """Which days the city closes, every year.

    country/subdivision: ISO codes the `holidays` library knows (None: no public holidays).
    public: the chosen public holidays, as (the library's name, localized names to say); the
      library names them in the country's default language ("Thanksgiving Day" for US).
    observed: None — a holiday closes on its own date only. Otherwise a holiday falling on a
      weekend closes the weekday the country observes it on *instead of* the weekend day (or as
      well, with `observed_both`), named with these templates per language ("{name} (observed)").
    yearly: the city's own recurring days. once: one-off closures (already dated).
    """
    country: str | None = None
    subdivision: str | None = None
    public: tuple[tuple[str, Names], ...] = ()
    observed: Names | None = None
    observed_both: bool = False
    yearly: tuple[YearlyDay, ...] = ()
    once: tuple[Closure, ...] = ()

    def closures_on(self, day: date) -> tuple[Closure, ...]:
        """The closures in force at some time of `day` (whole days first)."""
        return _year(self, day.year).get(day, ())

    def closures_between(self, first: date, last: date) -> list[Closure]:
        """Every closure from `first` to `last` inclusive, in date order."""
        found: list[Closure] = []
        for year in range(first.year, last.year + 1):
            found.extend(c for day, cs in sorted(_year(self, year).items()) if first <= day <= last for c in cs)
        return found


def _closure(day: date, names: Names, start: time | None = None, end: time | None = None) -> Closure:
    localized = tuple(pair for pair in names if pair[0])
    name = names[0][1] if names else ""
    return Closure(day=day, start=start, end=end, name=name, names=localized)


def _observed_names(template: Names, names: Names) -> Names:
    """The observed day's names: each language's template around that language's name."""
    by_language = dict(template)
    default = template[0][1] if template else "{name}"    # for a name given once for every language
    return tuple((lang, by_language.get(lang, default).replace("{name}", text)) for lang, text in names)


def library_calendar(country: str, subdivision: str | None, years: list[int], observed: bool):
    """The `holidays` library's calendar, names in the country's default language (English for US).

    Raises NotImplementedError for an unknown country or subdivision.
    """
    return owhf.country_holidays(country, subdiv=subdivision, years=years, observed=observed)


def _public_days(calendar: HolidayCalendar, year: int) -> Iterator[tuple[date, Closure]]:
    """The chosen public holidays around `year` (the neighbours matter: 2027-12-31 observes 2028-01-01)."""
    if not calendar.country or not calendar.public:
        return
    chosen = dict(calendar.public)
    library = library_calendar(calendar.country, calendar.subdivision, [year - 1, year, year + 1],
                               observed=calendar.observed is not None)
    actual: list[tuple[date, str]] = []
    moved: list[tuple[date, str]] = []
    for day in sorted(library):
        for name in library.get_list(day):
            match = _OBSERVED.match(name)
            base = match.group("base") if match else name
            if base in chosen:
                (moved if match else actual).append((day, base))
    if calendar.observed is not None and not calendar.observed_both:
        # "Instead": the weekend day itself is not a closure when the holiday is observed on a weekday.
        actual = [(day, name) for day, name in actual
                  if not any(other == name and abs(when - day) <= _OBSERVED_WITHIN for when, other in moved)]
    for day, name in actual:
        yield day, _closure(day, chosen[name])
    for day, name in moved:
        yield day, _closure(day, _observed_names(calendar.observed or (), chosen[name]))


@lru_cache(maxsize=64)
def _year(calendar: HolidayCalendar, year: int) -> dict[date, tuple[Closure, ...]]:
    """Every closure of `year` by date, whole-day closures first."""
    by_day: dict[date, list[Closure]] = {}
    for day, closure in _public_days(calendar, year):
        by_day.setdefault(day, []).append(closure)
    for rule in calendar.yearly:
        for candidate_year in (year - 1, year, year + 1):    # an offset may cross the new year
            day = rule.date_in(candidate_year)
            if day is not None:
                by_day.setdefault(day, []).append(_closure(day, rule.names, rule.start, rule.end))
    for closure in calendar.once:
        by_day.setdefault(closure.day, []).append(closure)
    return {day: tuple(sorted(closures, key=lambda c: (c.start or time.min, c.end or time.max)))
            for day, closures in by_day.items() if day.year == year}


@lru_cache(maxsize=32)    # every rules (re)load validates against it; the answer never changes
def public_holiday_names(country: str, subdivision: str | None) -> frozenset[str]:
    """Every holiday name the library knows for this country/subdivision (for validating choices)."""
    library = library_calendar(country, subdivision, list(NAME_CHECK_YEARS), observed=False)
    return frozenset(name for day in library for name in library.get_list(day))
