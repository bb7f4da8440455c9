"""Opening hours, holidays/closures and time zones from routing_rules.yaml nodes.

Formats (see docs/rules.md):
  hours:    {mon-fri: "08:00-17:00", sat: ["09:00-12:00", "13:00-15:00"], sun: closed}
  closures: [{date: 2026-12-25, name: Christmas}, {date: 2026-12-24, from: "12:00"},
             "2026-12-31 from 15:00", "2026-10-14 from 08:00 until 10:00"]
"""
from __future__ import annotations

import re
import zoneinfo
from datetime import date, time
from functools import lru_cache

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ivr.routing import holiday_calendar as hc
from ivr.routing.holiday_calendar import YearlyDay
from ivr.routing.rules import Closure, TimeRange
from ivr.routing.yamlread import Reader, is_null, kind_of, suggest

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_LONG_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")
_WINDOW = re.compile(r"^\s*([^-\s]+)\s*-\s*([^-\s]+)\s*$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CLOSURE_TEXT = re.compile(r"^(\S+)(?:\s+from\s+(\S+))?(?:\s+until\s+(\S+))?$")
_CLOSURE_KEYS = ("date", "from", "until", "name")


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def parse_timezone(reader: Reader, node: Node, what: str) -> str | None:
    """An IANA zone name that this machine's tz database knows."""
    name = reader.text(node, what)
    if name is None:
        return None
    try:
        zoneinfo.ZoneInfo(name)
        return name
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        pass
    if not _zone_names():
        reader.report(node, f"cannot check time zone '{name}' in {what}: this machine has no time zone "
                            "database — install one (apt-get install tzdata, or pip install tzdata)")
        return None
    hint = suggest(name, _zone_names()) or " — use an IANA name such as 'America/Chicago'"
    reader.report(node, f"unknown time zone '{name}' in {what}{hint}")
    return None


def _time(reader: Reader, node: Node, text: str, what: str, *, closing: bool) -> time | None:
    match = _TIME.match(text)
    hour, minute = (int(match.group(1)), int(match.group(2))) if match else (-1, -1)
    if closing and (hour, minute) == (24, 0):
        return time.max  # "until midnight" must sort after every real time
    if not match or hour > 23 or minute > 59:
        last = " (24:00 is allowed only as a closing time)" if text.startswith("24") else ""
        reader.report(node, f"invalid time '{text}' in {what} — write 24-hour HH:MM, e.g. '08:00' or "
                            f"'17:30'{last}")
        return None
    return time(hour, minute)


def parse_time(reader: Reader, node: Node, what: str, *, closing: bool = False) -> time | None:
    """A single HH:MM time node."""
    text = reader.text(node, what)
    return None if text is None else _time(reader, node, text, what, closing=closing)


def _day_keys(reader: Reader, node: Node, key: str, what: str) -> list[int] | None:
    """'mon' → [0]; 'mon-fri' → [0..4]; 'monday' also accepted."""
    def index(name: str) -> int | None:
        name = name.strip().lower()
        if name in DAYS:
            return DAYS.index(name)
        if name in _LONG_DAYS:
            return _LONG_DAYS.index(name)
        return None

    parts = key.split("-")
    indexes = [index(p) for p in parts]
    if len(parts) > 2 or None in indexes:
        bad = next((p for p, i in zip(parts, indexes) if i is None), key)
        reader.report(node, f"unknown day '{bad}' in {what}{suggest(bad.lower(), DAYS)} — use "
                            f"{', '.join(DAYS)} or a range like 'mon-fri'")
        return None
    first, last = indexes[0], indexes[-1]
    assert first is not None and last is not None  # None was rejected above
    if last < first:
        reader.report(node, f"day range '{key}' in {what} runs backwards — write it Monday-first, "
                            "e.g. 'mon-fri' or 'sat-sun'")
        return None
    return list(range(first, last + 1))


def _windows(reader: Reader, node: Node, what: str) -> tuple[TimeRange, ...] | None:
    if not isinstance(node, (ScalarNode, SequenceNode)) or is_null(node):
        reader.report(node, f"{what} must be a window like \"08:00-17:00\", a list of windows, or "
                            f"'closed' — found {kind_of(node)}")
        return None
    items = reader.sequence(node, what)
    if items is None:
        return None
    if len(items) == 1 and isinstance(items[0], ScalarNode) and items[0].value.strip().lower() == "closed":
        return ()
    windows: list[TimeRange] = []
    for item in items:
        text = reader.text(item, what)
        if text is None:
            continue
        match = _WINDOW.match(text)
        if not match:
            reader.report(item, f"opening window '{text}' in {what} must look like '08:00-17:00' "
                                "(or write 'closed')")
            continue
        opens = _time(reader, item, match.group(1), what, closing=False)
        closes = _time(reader, item, match.group(2), what, closing=True)
        if opens is None or closes is None:
            continue
        if closes <= opens:
            reader.report(item, f"window '{text}' in {what} closes before it opens — windows cannot "
                                "cross midnight; split it into '…-24:00' and the next day's '00:00-…'")
            continue
        windows.append(TimeRange(opens, closes))
    windows.sort(key=lambda w: w.opens)
    for before, after in zip(windows, windows[1:]):
        if after.opens < before.closes:
            reader.report(node, f"opening windows overlap in {what} "
                                f"({before.opens:%H:%M}-{before.closes:%H:%M} and "
                                f"{after.opens:%H:%M}-{after.closes:%H:%M}) — merge them or fix the times")
            return None
    return tuple(windows)


def parse_hours(reader: Reader, node: Node, what: str) -> dict[int, tuple[TimeRange, ...]] | None:
    """Weekday (0 = Monday) → windows. Days not listed are closed."""
    entries = reader.items(node, what)
    if entries is None:
        return None
    hours: dict[int, tuple[TimeRange, ...]] = {}
    given_by: dict[int, str] = {}
    ok = True
    for key, (key_node, value_node) in entries.items():
        days = _day_keys(reader, key_node, key, what)
        windows = _windows(reader, value_node, f"{what} on '{key}'")
        if days is None or windows is None:
            ok = False
            continue
        for day in days:
            if day in given_by:
                reader.report(key_node, f"{DAYS[day]} is given twice in {what} (in '{given_by[day]}' and "
                                        f"'{key}') — list each day once")
                ok = False
                continue
            given_by[day] = key
            if windows:
                hours[day] = windows
    return hours if ok else None


def _closure_parts(reader: Reader, node: Node, what: str) -> dict[str, Node] | None:
    """The date/from/until/name nodes of a closure in either the mapping or the text form."""
    if isinstance(node, ScalarNode):
        match = _CLOSURE_TEXT.match(node.value.strip())
        if not match:
            reader.report(node, f"closure '{node.value}' in {what} must look like '2026-12-24', "
                                "'2026-12-24 from 12:00' or '2026-12-24 from 08:00 until 10:00'")
            return None
        parts = dict(zip(("date", "from", "until"), match.groups()))
        return {k: ScalarNode("tag:yaml.org,2002:str", v, node.start_mark, node.end_mark)
                for k, v in parts.items() if v is not None}
    entries = reader.mapping(node, f"a closure in {what}", _CLOSURE_KEYS, required=("date",))
    return None if entries is None else {k: v for k, (_, v) in entries.items()}


def parse_closures(reader: Reader, node: Node, what: str) -> tuple[Closure, ...] | None:
    """A list of closures; each is a whole day or a part of one."""
    items = reader.sequence(node, what)
    if items is None:
        return None
    closures: list[Closure] = []
    for item in items:
        parts = _closure_parts(reader, item, what)
        if parts is None or "date" not in parts:
            continue
        day = parse_date(reader, parts["date"], f"a closure in {what}")
        start = parse_time(reader, parts["from"], f"'from' of a closure in {what}") if "from" in parts else None
        end = (parse_time(reader, parts["until"], f"'until' of a closure in {what}", closing=True)
               if "until" in parts else None)
        names = _closure_names(reader, parts["name"], what) if "name" in parts else ()
        if day is None or ("from" in parts and start is None) or ("until" in parts and end is None):
            continue
        if start is not None and end is not None and end <= start:
            reader.report(item, f"closure on {day} in {what} ends at {end:%H:%M}, not after it starts at "
                                f"{start:%H:%M} — swap or fix the times")
            continue
        closures.append(Closure(day=day, start=start, end=end, name=names[0][1] if names else "",
                                names=tuple(pair for pair in names if pair[0])))
    return tuple(closures)


def _closure_names(reader: Reader, node: Node, what: str) -> tuple[tuple[str, str], ...]:
    """A closure's name: one text for every language, or {en: …, es: …} so each caller hears theirs."""
    if not isinstance(node, MappingNode):
        text = reader.text(node, f"'name' of a closure in {what}")
        return (("", text),) if text else ()
    names = []
    for key, value in node.value:
        text = reader.text(value, f"'name' ({key.value}) of a closure in {what}")
        if text:
            names.append((str(key.value), text))
    return tuple(names)


def parse_date(reader: Reader, node: Node, what: str) -> date | None:
    """A YYYY-MM-DD date that exists in the calendar."""
    text = reader.text(node, what)
    if text is None:
        return None
    try:
        if not _DATE.match(text):
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        reader.report(node, f"invalid date '{text}' in {what} — write a real date as YYYY-MM-DD, "
                            "e.g. 2026-12-25")
        return None


# --- recurring holidays ----------------------------------------------------------------------
# holidays: {country: US, subdivision: IL, observed: {...}, public: {NAME: {en: …, es: …}}, city: [...]}
# (the older form, a list of dated closures, is still accepted: see parse_holidays).
_HOLIDAY_KEYS = ("country", "subdivision", "observed", "observed_days", "public", "city")
_CITY_DAY_KEYS = ("every", "date", "from", "until", "name")
_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september",
           "october", "november", "december")
_NTH = {"1st": 1, "first": 1, "2nd": 2, "second": 2, "3rd": 3, "third": 3, "4th": 4, "fourth": 4,
        "5th": 5, "fifth": 5, "last": -1}
_EVERY = re.compile(r"^\s*(?:(?P<nth>\S+)\s+(?P<weekday>[a-z]+)\s+of\s+(?P<month>[a-z]+)"
                    r"|(?P<fixed_month>[a-z]+)\s+(?P<fixed_day>\d{1,2})|(?P<mm>\d{2})-(?P<dd>\d{2}))"
                    r"\s*(?:(?P<sign>[+-])\s*(?P<days>\d+)\s+days?)?\s*$", re.IGNORECASE)
_EVERY_HELP = ("write 'december 24', '12-24', '4th thursday of november', 'last monday of may' or "
               "'4th thursday of november + 1 day'")


def _month(name: str) -> int | None:
    name = name.lower()
    found = [i for i, month in enumerate(_MONTHS, 1) if month == name or (len(name) >= 3 and month.startswith(name))]
    return found[0] if len(found) == 1 else None


def _weekday(name: str) -> int | None:
    name = name.lower()
    found = [i for i, day in enumerate(_LONG_DAYS) if day == name or day.startswith(name) and len(name) >= 3]
    return found[0] if len(found) == 1 else None


def parse_every(reader: Reader, node: Node, what: str):
    """The `every:` rule of a city day → YearlyDay fields (month, day, weekday, nth, offset), or None."""
    text = reader.text(node, what)
    if text is None:
        return None
    match = _EVERY.match(text)
    if not match:
        reader.report(node, f"'{text}' in {what} is not a yearly day — {_EVERY_HELP}")
        return None
    offset = int(match["days"] or 0) * (-1 if match["sign"] == "-" else 1)
    if match["nth"]:
        nth, weekday, month = _NTH.get(match["nth"].lower()), _weekday(match["weekday"]), _month(match["month"])
        if nth is None or weekday is None or month is None:
            bad = [w for w, v in ((match["nth"], nth), (match["weekday"], weekday), (match["month"], month)) if v is None]
            reader.report(node, f"'{bad[0]}' in '{text}' ({what}) is not understood — {_EVERY_HELP}")
            return None
        return {"month": month, "weekday": weekday, "nth": nth, "offset": offset}
    month = _month(match["fixed_month"]) if match["fixed_month"] else int(match["mm"])
    day = int(match["fixed_day"] or match["dd"])
    try:
        date(2024, month or 0, day)     # a leap year, so February 29 is allowed
    except ValueError:
        reader.report(node, f"'{text}' in {what} is not a day of the year — {_EVERY_HELP}")
        return None
    return {"month": month, "day": day, "offset": offset}


def _names(reader: Reader, node: Node, what: str, languages: tuple[str, ...]) -> tuple[tuple[str, str], ...] | None:
    if not isinstance(node, MappingNode):
        text = reader.text(node, what)
        return None if text is None else (("", text),)
    localized = reader.localized(node, what, languages)
    return None if localized is None else tuple(localized.items())


def _city_day(reader: Reader, node: Node, what: str, languages: tuple[str, ...]):
    """One `city:` entry: a recurring day (`every:`) → YearlyDay, or a dated closure → Closure."""
    if isinstance(node, ScalarNode) or (isinstance(node, MappingNode) and
                                        not any(k.value == "every" for k, _ in node.value)):
        closures = _parse_closure_list_item(reader, node, what)
        return closures
    entries = reader.mapping(node, f"a city day in {what}", _CITY_DAY_KEYS, required=("every", "name"))
    if entries is None:
        return None
    if "date" in entries:
        reader.report(entries["date"][0], f"a city day in {what} has both 'every' and 'date' — 'every' repeats "
                                          "each year, 'date' is one day: keep one")
        return None
    rule = parse_every(reader, entries["every"][1], f"'every' of a city day in {what}")
    names = _names(reader, entries["name"][1], f"the name of a city day in {what}", languages)
    start = parse_time(reader, entries["from"][1], f"'from' of a city day in {what}") if "from" in entries else None
    end = (parse_time(reader, entries["until"][1], f"'until' of a city day in {what}", closing=True)
           if "until" in entries else None)
    if rule is None or names is None or ("from" in entries and start is None) or ("until" in entries and end is None):
        return None
    if start is not None and end is not None and end <= start:
        reader.report(node, f"a city day in {what} ends at {end:%H:%M}, not after it starts at {start:%H:%M}")
        return None
    return YearlyDay(start=start, end=end, names=names, **rule)


def _parse_closure_list_item(reader: Reader, node: Node, what: str):
    from yaml.nodes import SequenceNode as _Seq

    closures = parse_closures(reader, _Seq("tag:yaml.org,2002:seq", [node], node.start_mark, node.end_mark), what)
    return closures[0] if closures else None


def parse_holidays(reader: Reader, node: Node, what: str, languages: tuple[str, ...]):
    """`holidays:` → a HolidayCalendar (mapping form) or a tuple of dated closures (list form)."""
    if isinstance(node, SequenceNode):      # the older form: dated closures only
        return parse_closures(reader, node, what)
    entries = reader.mapping(node, what, _HOLIDAY_KEYS)
    if entries is None:
        return None
    ok = True
    country = reader.text(entries["country"][1], f"the country of {what}") if "country" in entries else None
    subdivision = (reader.text(entries["subdivision"][1], f"the subdivision of {what}")
                   if "subdivision" in entries else None)
    known: frozenset[str] = frozenset()
    if country is not None:
        try:
            known = hc.public_holiday_names(country.upper(), subdivision and subdivision.upper())
            country, subdivision = country.upper(), subdivision and subdivision.upper()
        except NotImplementedError:
            if subdivision and _country_known(country):
                reader.report(entries["subdivision"][1], f"the holidays library has no subdivision '{subdivision}' "
                                                        f"of '{country.upper()}' ({what}) — use its ISO 3166-2 code, "
                                                        "e.g. 'IL' for Illinois")
            else:
                reader.report(entries["country"][1], f"the holidays library has no country '{country}' ({what}) — "
                                                    "use an ISO 3166 code such as 'US'")
            ok = False
    elif "subdivision" in entries or "public" in entries:
        reader.report(node, f"{what} chooses public holidays but names no country — add e.g. 'country: US'")
        ok = False
    public: list[tuple[str, tuple[tuple[str, str], ...]]] = []
    if "public" in entries:
        items = reader.items(entries["public"][1], f"the public holidays of {what}")
        for name, (key_node, value_node) in (items or {}).items():
            if known and name not in known:
                reader.report(key_node, f"'{name}' is not a public holiday of {country}"
                                        f"{'-' + subdivision if subdivision else ''}{suggest(name, known)} — "
                                        f"known: {', '.join(sorted(known))}")
                ok = False
                continue
            if is_null(value_node):
                public.append((name, (("", name),)))
                continue
            names = _names(reader, value_node, f"the name of '{name}' in {what}", languages)
            if names is None:
                ok = False
            else:
                public.append((name, names))
        ok = ok and items is not None
    # Weekend observance is on unless turned off: the weekday the country observes it on is named
    # like the holiday itself unless templates say otherwise ({en: "{name} (observed)"}).
    observed: tuple[tuple[str, str], ...] | None = (("", "{name}"),)
    both = False
    if "observed" in entries:
        value = entries["observed"][1]
        if isinstance(value, ScalarNode) and value.value.lower() in ("false", "no", "off"):
            observed = None
        elif isinstance(value, ScalarNode) and value.value.lower() in ("true", "yes", "on"):
            observed = (("", "{name}"),)
        else:
            observed = _names(reader, value, f"'observed' of {what} (name templates with {{name}})", languages)
            ok = ok and observed is not None
    if "observed_days" in entries:
        mode = reader.text(entries["observed_days"][1], f"observed_days of {what}")
        if mode not in ("instead", "both"):
            reader.report(entries["observed_days"][1], f"observed_days of {what} must be 'instead' (close on the "
                                                      "observed weekday, not the weekend day) or 'both'")
            ok = False
        both = mode == "both"
    yearly, once = [], []
    if "city" in entries:
        for item in reader.sequence(entries["city"][1], f"the city days of {what}") or ():
            day = _city_day(reader, item, f"the city days of {what}", languages)
            if day is None:
                ok = False
            elif isinstance(day, hc.YearlyDay):
                yearly.append(day)
            else:
                once.append(day)
    if not ok:
        return None
    return hc.HolidayCalendar(country=country, subdivision=subdivision, public=tuple(public), observed=observed,
                              observed_both=both, yearly=tuple(yearly), once=tuple(once))


def _country_known(country: str) -> bool:
    try:
        hc.public_holiday_names(country.upper(), None)
        return True
    except NotImplementedError:
        return False
