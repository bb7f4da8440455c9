"""Opening hours: is a department open at an instant, and how to say its hours. Pure.

Times in the rules are the department's local wall-clock times; `now` is an aware
instant (normally UTC). Converting through `zoneinfo` makes DST transitions right:
08:00 in America/Chicago is 14:00 UTC in January and 13:00 UTC in July.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Callable, Iterable
from zoneinfo import ZoneInfo

from ivr.lang import HoursWording, Language
from ivr.routing.rules import Closure, Department, Rules, TimeRange

def local_time(department: Department, now: datetime) -> datetime:
    """`now` in the department's time zone; a naive `now` is refused (it would hide DST bugs)."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware (e.g. datetime.now(timezone.utc))")
    return now.astimezone(ZoneInfo(department.timezone))


def _in_range(window: TimeRange, moment: time) -> bool:
    # closes == time.max stands for 24:00; an overnight window is split by the caller.
    return window.opens <= moment < window.closes or (window.closes == time.max and moment >= window.opens)


def _overnight(window: TimeRange) -> bool:
    return window.closes <= window.opens and window.closes != time.max


def closures_on(department: Department, day: date) -> tuple[Closure, ...]:
    """Every closure of `day`: the department's dated ones and the city's holidays that year."""
    dated = tuple(c for c in department.closures if c.day == day)
    return dated + (department.holidays.closures_on(day) if department.holidays else ())


def closures_between(department: Department, first: date, last: date) -> list[Closure]:
    """Every closure from `first` to `last` inclusive, in date order (for `ivr check` and listings)."""
    found = [c for c in department.closures if first <= c.day <= last]
    if department.holidays:
        found += department.holidays.closures_between(first, last)
    return sorted(found, key=lambda c: (c.day, c.start or time.min))


def without_holidays(departments: Iterable[Department], today: date, days: int = 365) -> list[str]:
    """Ids of the departments that observe holidays but have none from `today` for `days` days.

    A list of dates that has run out looks exactly like this; `ivr check` warns about it.
    """
    last = today + timedelta(days=days)
    return [d.id for d in departments
            if d.observes_holidays and not closures_between(d, today, last)]


def closure_on(department: Department, local: datetime) -> Closure | None:
    """The holiday or partial closure in force at `local` (department time), if any."""
    moment = local.time().replace(tzinfo=None)
    for closure in closures_on(department, local.date()):
        start = closure.start or time.min
        end = closure.end or time.max
        if start <= moment < end or (end == time.max and moment >= start):
            return closure
    return None


def is_open(department: Department, now: datetime) -> bool:
    """True when `now` falls inside an opening window and outside every closure."""
    local = local_time(department, now)
    if closure_on(department, local) is not None:
        return False
    moment = local.time().replace(tzinfo=None)
    for window in department.hours.get(local.weekday(), ()):
        if _overnight(window):
            if moment >= window.opens:
                return True
        elif _in_range(window, moment):
            return True
    # An overnight window opened yesterday (e.g. 22:00–06:00) still covers the small hours.
    yesterday = (local.weekday() - 1) % 7
    return any(_overnight(w) and moment < w.closes for w in department.hours.get(yesterday, ()))


def next_opening(department: Department, now: datetime, horizon_days: int = 14) -> datetime | None:
    """The next local instant the department opens (for "we open again Monday at 8"), or None."""
    local = local_time(department, now)
    for offset in range(horizon_days + 1):
        day: date = (local + timedelta(days=offset)).date()
        for window in sorted(department.hours.get(day.weekday(), ()), key=lambda w: w.opens):
            candidate = datetime.combine(day, window.opens, tzinfo=local.tzinfo)
            if candidate > local and is_open(department, candidate):
                return candidate
    return None


def _clock(moment: time, words: HoursWording) -> str:
    if moment == time.max:
        return words.midnight
    if words.clock == "12h":
        hour = moment.hour % 12 or 12
        suffix = words.am if moment.hour < 12 else words.pm
        return f"{hour}:{moment.minute:02d} {suffix}" if moment.minute else f"{hour} {suffix}"
    return f"{moment.hour}:{moment.minute:02d}"


def _windows_text(windows: tuple[TimeRange, ...], words: HoursWording) -> str:
    parts = []
    for w in sorted(windows, key=lambda w: w.opens):
        if w.opens == time.min and w.closes == time.max:
            parts.append(words.all_day)
        else:
            parts.append(words.time_range.format(opens=_clock(w.opens, words), closes=_clock(w.closes, words)))
    return f" {words.and_} ".join(parts)


def hours_text(department: Department, language: Language) -> str:
    """The weekly hours as a sentence fragment, e.g. "Monday to Friday, 8 AM to 5 PM".

    Consecutive days with the same windows are grouped; the wording is the language file's `hours`.
    """
    words = language.hours
    groups: list[tuple[int, int, tuple[TimeRange, ...]]] = []
    for day in range(7):
        windows = tuple(department.hours.get(day, ()))
        if not windows:
            continue
        if groups and groups[-1][1] == day - 1 and groups[-1][2] == windows:
            groups[-1] = (groups[-1][0], day, windows)
        else:
            groups.append((day, day, windows))
    if not groups:
        return words.closed
    phrases = []
    for first, last, windows in groups:
        days = words.days[first] if first == last else \
            words.day_range.format(first=words.days[first], last=words.days[last])
        phrases.append(f"{days}, {_windows_text(windows, words)}")
    return "; ".join(phrases)


def hours_by_code(rules: Rules) -> Callable[[Department, str], str]:
    """`hours_text` taking a language code, worded by the rules' language files (prompt pre-rendering)."""
    return lambda department, code: hours_text(department, rules.language(code))


def closure_note(department: Department, now: datetime, language: Language) -> str:
    """"; closed today for Memorial Day" when a named closure is why the department is shut, else ""."""
    closure = closure_on(department, local_time(department, now))
    if closure is None or not closure.name:
        return ""
    return f"; {language.hours.closed_today_for} {closure.name_in(language.code)}"


def city_timezone(rules: Rules) -> ZoneInfo:
    """The city's zone: the operator desk's (every department inherits the city default)."""
    department = rules.departments.get(rules.operator) or next(iter(rules.departments.values()), None)
    return ZoneInfo(department.timezone if department else "UTC")
