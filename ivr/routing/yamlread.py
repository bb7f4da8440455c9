"""Reading composed YAML nodes while collecting `Problem`s with the line each came from.

We validate `yaml.compose` nodes rather than `yaml.safe_load` data for two reasons: every
node carries its line (so each problem says FILE:LINE), and we see the text the admin typed
(`no` stays "no", `08:00` stays "08:00") instead of YAML 1.1's guesses (False, 480).
"""
from __future__ import annotations

import difflib
from typing import Iterable

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ivr.routing.problems import Problem

_NULL_TAG = "tag:yaml.org,2002:null"
# libyaml composes the same nodes, with marks, several times faster than the pure-Python loader.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TRUE = {"true", "yes", "on"}
_FALSE = {"false", "no", "off"}


def line_of(node: Node) -> int:
    """1-based line where `node` starts."""
    return node.start_mark.line + 1


def kind_of(node: Node) -> str:
    """How to name a node's shape in a message ("a list", "a mapping", "text")."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return "an empty value" if is_null(node) else f"'{node.value}'"


def is_null(node: Node) -> bool:
    """True for `key:` with nothing after it, `~` and `null`."""
    return isinstance(node, ScalarNode) and node.tag == _NULL_TAG


# Words admins reach for that are not spelled like the key they mean.
_SYNONYMS = {"holidays": "closures", "closures": "holidays", "phone": "line", "number": "line",
             "tz": "timezone", "time_zone": "timezone", "open": "hours", "opening_hours": "hours",
             "label": "name", "title": "name", "dept": "department", "phrases": "keywords"}


def suggest(word: str, choices: Iterable[str]) -> str:
    """" — did you mean 'x'?" when a close choice exists, else ""."""
    choices = list(choices)
    if _SYNONYMS.get(word) in choices:
        return f" — did you mean '{_SYNONYMS[word]}'?"
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" — did you mean '{close[0]}'?" if close else ""


class Reader:
    """Collects problems for one file; helpers return None when a value is unusable."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []   # valid, but probably not meant: reported, not refused

    def report(self, where: Node | int, message: str) -> None:
        """Record a problem at a node's line (or an explicit line number)."""
        line = where if isinstance(where, int) else line_of(where)
        self.problems.append(Problem(self.path, line, message))

    def warn(self, where: Node | int, message: str) -> None:
        """Record a warning at a node's line: `ivr check` prints it, the rules still load."""
        line = where if isinstance(where, int) else line_of(where)
        self.warnings.append(Problem(self.path, line, message))

    def compose(self, text: str) -> Node | None:
        """Parse YAML syntax; a syntax error becomes a problem at its line."""
        try:
            root = yaml.compose(text, Loader=_LOADER)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark else 0
            what = " ".join(part for part in (exc.context, exc.problem) if part)
            self.report(line, f"YAML syntax error: {what} — check indentation (spaces, not tabs), "
                              "colons and quotes on this line or the one before")
            return None
        except yaml.YAMLError as exc:  # errors without a position (e.g. bad encoding)
            self.report(0, f"cannot read the file as YAML: {exc}")
            return None
        if root is None:
            self.report(0, "the file is empty — start from the shipped routing_rules.yaml")
        return root

    def mapping(self, node: Node, what: str, allowed: Iterable[str], required: Iterable[str] = (),
                owner: Node | None = None) -> dict[str, tuple[Node, Node]] | None:
        """Entries of a mapping by key → (key node, value node).

        Reports a non-mapping, duplicate keys, unknown keys (with a suggestion) and missing
        required keys — those at `owner` (the mapping's own key, e.g. `roads:`) when given,
        since a block mapping starts at its first key. Returns None only when `node` is not
        a mapping at all.
        """
        if not isinstance(node, MappingNode):
            self.report(node, f"{what} must be a mapping of 'key: value' lines, found {kind_of(node)}")
            return None
        allowed = list(allowed)
        entries: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.report(key_node, f"a key in {what} must be plain text, found {kind_of(key_node)}")
                continue
            key = key_node.value
            if key in entries:
                first = line_of(entries[key][0])
                self.report(key_node, f"'{key}' appears twice in {what} (first on line {first}) — "
                                      "keep one of them")
                continue
            if allowed and key not in allowed:
                hint = suggest(key, allowed) or f" — allowed keys: {', '.join(allowed)}"
                self.report(key_node, f"unknown key '{key}' in {what}{hint}")
                continue
            entries[key] = (key_node, value_node)
        for key in required:
            if key not in entries:
                self.report(owner or node, f"{what} is missing '{key}' — add a '{key}:' line")
        return entries

    def items(self, node: Node, what: str) -> dict[str, tuple[Node, Node]] | None:
        """A mapping whose keys are admin-chosen ids (departments, intents, menu digits)."""
        return self.mapping(node, what, allowed=())

    def text(self, node: Node, what: str, *, allow_empty: bool = False) -> str | None:
        """A scalar's text, stripped; reports lists, mappings and (unless allowed) empty values."""
        if not isinstance(node, ScalarNode):
            self.report(node, f"{what} must be text, found {kind_of(node)}")
            return None
        value = "" if is_null(node) else node.value.strip()
        if not value and not allow_empty:
            self.report(node, f"{what} is empty — give it a value")
            return None
        return value

    def boolean(self, node: Node, what: str) -> bool | None:
        """true/false (also yes/no, on/off)."""
        value = self.text(node, what)
        if value is None:
            return None
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        self.report(node, f"{what} must be true or false, found '{value}'")
        return None

    def number(self, node: Node, what: str, low: float, high: float) -> float | None:
        """A number within [low, high]."""
        if not isinstance(node, ScalarNode):
            self.report(node, f"{what} must be a number between {low:g} and {high:g}, found {kind_of(node)}")
            return None
        value = self.text(node, what)
        if value is None:
            return None
        try:
            number = float(value)
        except ValueError:
            self.report(node, f"{what} must be a number between {low:g} and {high:g}, found '{value}'")
            return None
        if not low <= number <= high:
            self.report(node, f"{what} is {value} — it must be between {low:g} and {high:g}")
            return None
        return number

    def sequence(self, node: Node, what: str) -> list[Node] | None:
        """Items of a list; a single scalar counts as a one-item list."""
        if isinstance(node, SequenceNode):
            return list(node.value)
        if isinstance(node, ScalarNode) and not is_null(node):
            return [node]
        if is_null(node):
            self.report(node, f"{what} is empty — add at least one entry")
        else:
            self.report(node, f"{what} must be a list, found {kind_of(node)}")
        return None

    def texts(self, node: Node, what: str) -> tuple[str, ...] | None:
        """A non-empty list of non-empty texts, duplicates reported."""
        items = self.sequence(node, what)
        if items is None:
            return None
        values: list[str] = []
        for item in items:
            value = self.text(item, f"an entry of {what}")
            if value is None:
                continue
            if value.lower() in (v.lower() for v in values):
                self.report(item, f"'{value}' is listed twice in {what} — remove one")
                continue
            values.append(value)
        if not values and len(items) == 0:
            self.report(node, f"{what} is an empty list — add at least one entry")
        return tuple(values) if values else None

    def _per_language(self, node: Node, what: str, languages: tuple[str, ...]) -> dict[str, tuple[Node, Node]] | None:
        entries = self.mapping(node, what, allowed=languages)
        if entries is None:
            return None
        for lang in languages:
            if lang not in entries:
                self.report(node, f"{what} has no '{lang}' text — add '{lang}: …' (every language in "
                                  "'languages' needs one)")
        return entries

    def localized(self, node: Node, what: str, languages: tuple[str, ...]) -> dict[str, str] | None:
        """{language: text} with text for every language offered and no others."""
        entries = self._per_language(node, what, languages)
        if entries is None:
            return None
        values = {lang: self.text(value, f"the '{lang}' text of {what}") for lang, (_, value) in entries.items()}
        if any(v is None for v in values.values()) or len(values) < len(languages):
            return None
        return values  # type: ignore[return-value]  # None values were excluded above

    def phrases(self, node: Node, what: str,
                languages: tuple[str, ...]) -> dict[str, tuple[str, ...]] | None:
        """{language: (phrase, …)} with a non-empty list for every language offered."""
        entries = self._per_language(node, what, languages)
        if entries is None:
            return None
        values = {lang: self.texts(value, f"the '{lang}' {what}") for lang, (_, value) in entries.items()}
        if any(v is None for v in values.values()) or len(values) < len(languages):
            return None
        return values  # type: ignore[return-value]  # None values were excluded above
