"""The `defaults:` and `departments:` sections: settings, inheritance and the `Department`s."""
from __future__ import annotations

from datetime import time
from typing import Any

from yaml.nodes import Node

from ivr.routing.fields import (BUSY_ACTIONS, CLOSED_ACTIONS, Context, check_id, parse_fallback,
                                parse_line, parse_whisper)
from ivr.routing.rules import Department, Fallback
from ivr.routing.holiday_calendar import HolidayCalendar
from ivr.routing.notify import parse_notify
from ivr.routing.schedule import parse_closures, parse_holidays, parse_hours, parse_timezone

DEFAULT_KEYS = ("timezone", "hours", "holidays", "answer", "when_closed", "when_busy", "whisper")
DEPARTMENT_KEYS = ("name", "line", "queue", "answer", "timezone", "hours", "closures", "observes_holidays",
                   "when_closed", "when_busy", "whisper", "notify")
ANSWER_MODES = ("transfer", "queue")
_QUEUE_MAX = 64  # Twilio's limit on a queue's friendly name


def _settings(ctx: Context, entries: dict[str, tuple[Node, Node]], what: str) -> dict[str, Any]:
    """The shared keys of `defaults` and a department; unusable values are left out."""
    reader, out = ctx.reader, {}
    parsers = {
        "timezone": lambda n: parse_timezone(reader, n, f"the time zone of {what}"),
        "hours": lambda n: parse_hours(reader, n, f"the hours of {what}"),
        "holidays": lambda n: parse_holidays(reader, n, f"the holidays of {what}", ctx.languages),
        "closures": lambda n: parse_closures(reader, n, f"the closures of {what}"),
        "whisper": lambda n: parse_whisper(reader, n, f"the whisper of {what}"),
        "when_closed": lambda n: parse_fallback(reader, n, f"when_closed of {what}", CLOSED_ACTIONS),
        "when_busy": lambda n: parse_fallback(reader, n, f"when_busy of {what}", BUSY_ACTIONS),
        "observes_holidays": lambda n: reader.boolean(n, f"observes_holidays of {what}"),
    }
    for key, (_, value_node) in entries.items():
        if key == "answer":
            value = reader.text(value_node, f"answer of {what}")
            if value is not None and value not in ANSWER_MODES:
                reader.report(value_node, f"answer of {what} is '{value}' — choose transfer (dial the line) "
                                          "or queue (hold in the department's queue)")
                value = None
        elif key in parsers:
            value = parsers[key](value_node)
        else:
            continue
        if value is not None:
            out[key] = value
    return out


def _department(ctx: Context, dept_id: str, key_node: Node, node: Node,
                defaults: dict[str, Any], defaults_given: tuple[str, ...]) -> Department | None:
    reader, what = ctx.reader, f"department '{dept_id}'"
    entries = reader.mapping(node, what, DEPARTMENT_KEYS, required=("name", "line"), owner=key_node)
    if entries is None:
        return None
    own = _settings(ctx, entries, what)
    for kind in ("when_closed", "when_busy"):
        ctx.fallback_nodes[(dept_id, kind)] = entries[kind][1] if kind in entries else key_node
    name = reader.localized(entries["name"][1], f"the name of {what}", ctx.languages) if "name" in entries else None
    line = parse_line(reader, entries["line"][1], f"the line of {what}") if "line" in entries else None
    queue = reader.text(entries["queue"][1], f"the queue of {what}") if "queue" in entries else dept_id
    if queue is not None and len(queue) > _QUEUE_MAX:
        reader.report(entries["queue"][1], f"the queue name of {what} is longer than {_QUEUE_MAX} "
                                           "characters — Twilio refuses it; shorten it")
        queue = None
    merged = {**defaults, **own}
    for key in ("timezone", "hours"):
        # A default that was given but is broken is reported once there, not per department.
        if key not in merged and key not in entries and key not in defaults_given:
            reader.report(key_node, f"{what} has no {key} — set '{key}:' here or under 'defaults:'")
    notify = parse_notify(reader, entries["notify"][1], what) if "notify" in entries else ()
    closures = own.get("closures", ())
    calendar = None
    if merged.get("observes_holidays", True):
        city = defaults.get("holidays", ())
        if isinstance(city, HolidayCalendar):    # recurring: asked day by day (hours.closures_on)
            calendar = city
        else:                                    # the older form: a list of dated closures
            closures = city + closures
    if None in (name, line, queue, notify) or "timezone" not in merged or "hours" not in merged:
        return None
    return Department(
        id=dept_id, name=name, line=line, queue=queue,  # type: ignore[arg-type]  # None ruled out above
        answer=merged.get("answer", "transfer"), timezone=merged["timezone"], hours=merged["hours"],
        closures=tuple(sorted(closures, key=lambda c: (c.day, c.start or time.min))),
        holidays=calendar, observes_holidays=merged.get("observes_holidays", True),
        when_closed=merged.get("when_closed", Fallback("voicemail")),
        when_busy=merged.get("when_busy", Fallback("queue")),
        whisper=merged.get("whisper", ""), notify=notify,  # type: ignore[arg-type]
    )


def parse_departments(ctx: Context, node: Node, defaults_node: Node | None) -> None:
    """Fill `ctx.departments` (valid ones) and `ctx.department_nodes` (every id seen)."""
    reader = ctx.reader
    defaults: dict[str, Any] = {}
    defaults_given: tuple[str, ...] = ()
    if defaults_node is not None:
        entries = reader.mapping(defaults_node, "defaults", DEFAULT_KEYS)
        if entries:
            defaults = _settings(ctx, entries, "defaults")
            defaults_given = tuple(entries)
    items = reader.items(node, "departments")
    if not items:
        if items is not None:
            reader.report(node, "departments is empty — add at least the operator department")
        return
    for dept_id, (key_node, value_node) in items.items():
        if check_id(reader, key_node, "department id") is None:
            continue
        ctx.department_nodes[dept_id] = key_node
        department = _department(ctx, dept_id, key_node, value_node, defaults, defaults_given)
        if department is not None:
            ctx.departments[dept_id] = department
