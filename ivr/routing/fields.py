"""Shared pieces of rules validation: the pass context and field parsers (lines, ids, fallbacks).

Used by `departments.py` and `references.py`; `validate.py` drives them.
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass, field

from yaml.nodes import Node, ScalarNode

from ivr.routing.rules import Department, Fallback
from ivr.routing.yamlread import Reader

#: Fallbacks without a target, per situation; "department" and "transfer" take one.
CLOSED_ACTIONS = ("voicemail", "callback", "message")
BUSY_ACTIONS = ("queue", "voicemail", "callback")
WHISPER_FIELDS = ("department", "heard", "confidence", "language", "caller")
ID_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_SIP = re.compile(r"^sips?:[^@\s:;]+@[A-Za-z0-9.-]+(:\d{1,5})?(;\S*)?$")
_LINE_SEPARATORS = re.compile(r"[\s().-]")


@dataclass
class Context:
    """What the later passes need: parsed pieces plus the nodes to point problems at."""
    reader: Reader
    languages: tuple[str, ...] = ()
    departments: dict[str, Department] = field(default_factory=dict)
    department_nodes: dict[str, Node] = field(default_factory=dict)      # id → key node
    fallback_nodes: dict[tuple[str, str], Node] = field(default_factory=dict)  # (id, when_x) → node
    menu_paths: dict[str, str] = field(default_factory=dict)             # department id → "1 2"
    operator: str | None = None                                          # its keypad path is "0"
    service_codes: dict[str, tuple[str, Node]] = field(default_factory=dict)  # code → (intent, node)


def check_id(reader: Reader, node: Node, what: str) -> str | None:
    """A lowercase identifier such as 'roads' or 'street_sweeping'."""
    value = reader.text(node, what)
    if value is not None and not ID_PATTERN.match(value):
        fixed = re.sub(r"[^a-z0-9_]+", "_", value.lower()).strip("_")
        reader.report(node, f"{what} '{value}' must be lowercase letters, digits and '_' starting with a "
                            f"letter, e.g. '{fixed or 'roads'}'")
        return None
    return value


def parse_line(reader: Reader, node: Node, what: str) -> str | None:
    """An E.164 number (spaces, dashes, dots and brackets allowed) or a sip:/sips: URI."""
    value = reader.text(node, what)
    if value is None:
        return None
    if value.lower().startswith(("sip:", "sips:")):
        if _SIP.match(value):
            return value
        reader.report(node, f"{what} '{value}' is not a valid SIP URI — write it like "
                            "'sip:desk@pbx.example.gov'")
        return None
    number = _LINE_SEPARATORS.sub("", value)
    if _E164.match(number):
        return number
    if number.isdigit():
        hint = "add the '+' and country code, e.g. '+1 312 555 0101'"
    else:
        hint = "use an E.164 number like '+1 312 555 0101' or a SIP URI like 'sip:desk@pbx.example.gov'"
    reader.report(node, f"{what} '{value}' is not a valid phone number — {hint}")
    return None


def parse_whisper(reader: Reader, node: Node, what: str) -> str | None:
    """Agent whisper text; only the placeholders the web layer fills are allowed."""
    value = reader.text(node, what, allow_empty=True)
    if value is None:
        return None
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(value) if name is not None]
    except ValueError as exc:
        reader.report(node, f"{what} has a broken placeholder ({exc}) — write placeholders like "
                            "{heard}; double braces {{ }} for a literal brace")
        return None
    unknown = [f for f in fields if f not in WHISPER_FIELDS]
    if unknown:
        reader.report(node, f"{what} uses unknown placeholder {{{unknown[0]}}} — use only "
                            f"{', '.join('{' + f + '}' for f in WHISPER_FIELDS)}")
        return None
    return value


def parse_fallback(reader: Reader, node: Node, what: str, simple: tuple[str, ...]) -> Fallback | None:
    """`voicemail` style names, or {department: ID} / {transfer: LINE}."""
    choices = ", ".join(simple) + ", {department: ID} or {transfer: LINE}"
    if isinstance(node, ScalarNode):
        value = reader.text(node, what)
        if value is None:
            return None
        if value in simple:
            return Fallback(value)
        if value in ("department", "transfer"):
            reader.report(node, f"{what} '{value}' needs a target — write it as {{{value}: …}}")
        elif value in CLOSED_ACTIONS + BUSY_ACTIONS:
            reader.report(node, f"{what} cannot be '{value}' here — choose {choices}")
        else:
            reader.report(node, f"{what} is '{value}', which is not a fallback — choose {choices}")
        return None
    entries = reader.mapping(node, what, ("department", "transfer"))
    if entries is None:
        return None
    if len(entries) != 1:
        reader.report(node, f"{what} must have exactly one of 'department' or 'transfer'")
        return None
    (action, (_, target_node)), = entries.items()
    target = (parse_line(reader, target_node, f"the transfer line of {what}") if action == "transfer"
              else reader.text(target_node, f"the department of {what}"))
    return None if target is None else Fallback(action, target)
