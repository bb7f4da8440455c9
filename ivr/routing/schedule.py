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
