"""Loading the rules: routing_rules.yaml → `Rules`, or `ConfigError` listing every problem found.

Problems are collected, never raised one at a time, so an admin fixes a file in one pass.
`departments.py` reads defaults and departments; `references.py` reads the menu, intents and
emergency section and checks that everything refers to something that exists.
"""
from __future__ import annotations

import re
from pathlib import Path

from typing import Iterable

from yaml.nodes import Node

from ivr.lang import Language, LanguageError, dirs_beside, load_language

from ivr.routing import references
from ivr.routing.departments import parse_departments
from ivr.routing.fields import Context
from ivr.routing.problems import ConfigError, Problem
from ivr.routing.rules import Rules, Thresholds
from ivr.routing.topics import parse_topics
from ivr.routing.yamlread import Reader

TOP_KEYS = ("languages", "operator", "thresholds", "defaults", "departments", "menu", "emergency", "intents",
            "topics")
_REQUIRED_TOP = ("languages", "operator", "thresholds", "departments", "menu", "emergency", "intents")
_LANGUAGE = re.compile(r"^[a-z]{2,3}$")


def _languages(reader: Reader, node: Node) -> tuple[str, ...]:
    codes = reader.texts(node, "languages") or ()
    good = tuple(c for c in codes if _LANGUAGE.match(c))
    for code in codes:
        if code not in good:
            reader.report(node, f"language '{code}' must be a lowercase ISO 639 code such as 'en' or 'es'")
    return good


def _thresholds(reader: Reader, node: Node) -> Thresholds | None:
    entries = reader.mapping(node, "thresholds", ("route", "confirm"), required=("route", "confirm"))
    if entries is None or len(entries) < 2:
        return None
    route = reader.number(entries["route"][1], "thresholds.route", 0.0, 1.0)
    confirm = reader.number(entries["confirm"][1], "thresholds.confirm", 0.0, 1.0)
    if route is None or confirm is None:
        return None
    if route < confirm:
        reader.report(entries["route"][1], f"thresholds.route ({route:g}) is below thresholds.confirm ({confirm:g}) — "
                            "route directly must need at least as much confidence as confirming")
        return None
    return Thresholds(route=route, confirm=confirm)


def _language_files(reader: Reader, node: Node, codes: tuple[str, ...],
                    lang_dirs: tuple[Path, ...]) -> dict[str, Language]:
    found = {}
    for code in codes:
        try:
            found[code] = load_language(code, lang_dirs)
        except LanguageError as exc:
            reader.report(node, f"language '{code}': {exc}")
    return found


def build_rules(text: str, path: str, lang_dirs: Iterable[str | Path] = ()) -> Rules:
    """Validate the file's text and build `Rules`; raises `ConfigError` with every problem.

    Each language's file is looked for in `lang_dirs`, then among the built-in ones (ivr/lang/).
    """
    reader = Reader(path)
    root = reader.compose(text)
    top = reader.mapping(root, "the rules file", TOP_KEYS, _REQUIRED_TOP) if root is not None else None
    if top is None:
        raise ConfigError(reader.problems)
    ctx = Context(reader)
    lang: dict[str, Language] = {}
    if "languages" in top:
        ctx.languages = _languages(reader, top["languages"][1])
        lang = _language_files(reader, top["languages"][1], ctx.languages, tuple(Path(d) for d in lang_dirs))
    thresholds = _thresholds(reader, top["thresholds"][1]) if "thresholds" in top else None
    if "departments" in top:
        parse_departments(ctx, top["departments"][1], top["defaults"][1] if "defaults" in top else None)
    operator = None
    if "operator" in top:
        operator = references.department_ref(ctx, top["operator"][1], "operator")
        ctx.operator = operator
    menu = references.parse_menu(ctx, top["menu"][1]) if "menu" in top else None
    intents = references.parse_intents(ctx, top["intents"][1]) if "intents" in top else None
    emergency = references.parse_emergency(ctx, top["emergency"][1]) if "emergency" in top else None
    topics = parse_topics(ctx, top["topics"][1], intents) if "topics" in top else ()
    references.check_fallbacks(ctx)
    if menu is not None and operator is not None:
        references.check_reachable(ctx, operator)
    if reader.problems:
        raise ConfigError(sorted(reader.problems, key=lambda p: p.line))
    if thresholds is None or menu is None or intents is None or emergency is None or operator is None:
        # Each builder reports why it returned None, so this means a builder forgot to.
        raise RuntimeError(f"{path}: rules incomplete without a reported problem (a validator bug)")
    return Rules(languages=ctx.languages, operator=operator, departments=dict(ctx.departments),
                 intents=intents, menu=menu, thresholds=thresholds, emergency=emergency, topics=topics or (),
                 source=path, lang=lang, warnings=tuple(sorted(reader.warnings, key=lambda p: p.line)))


def parse_rules(text: str, path: str = "<rules>", lang_dirs: Iterable[str | Path] = ()) -> Rules:
    """Validate YAML text and build `Rules`; `ConfigError` lists every problem with its line."""
    return build_rules(text, path, lang_dirs)


def load_rules(path: str | Path, lang_dirs: Iterable[str | Path] | None = None) -> Rules:
    """Read and validate a routing_rules.yaml file; `ConfigError` lists every problem.

    Language files are looked for in `lang_dirs` (default: `lang/` beside the rules file), then
    among the built-in ones, so an admin adds a language without touching the package.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError([Problem(str(path), 0, f"cannot read the rules file: {reason} — check the path "
                                                 "(IVR_RULES_PATH) and that it is UTF-8 text")]) from exc
    dirs = dirs_beside(path) if lang_dirs is None else tuple(lang_dirs)
    return parse_rules(text, str(path), dirs)
