"""The keypad menu (two levels: groups → departments) and localised rule texts. Pure.

0 (operator) and 9 (repeat) are reserved at every level; `decide` handles those keys.
"""
from __future__ import annotations

from dataclasses import replace
from ivr.routing.actions import Menu
from ivr.routing.rules import MenuOption, Rules
from ivr.routing.state import CallState, Decision


def localized(texts: object, language: str, rules: Rules) -> str:
    """Localised text with the default language as a fallback (the loader checks completeness)."""
    if isinstance(texts, str):
        return texts
    mapping = dict(texts)  # type: ignore[call-overload]
    return mapping.get(language) or mapping.get(rules.default_language) or next(iter(mapping.values()), "")


def menu_options(rules: Rules, path: str) -> tuple[MenuOption, ...] | None:
    """The options at keypad `path` ("" = top level), or None if the path leads nowhere."""
    options = rules.menu
    for digit in path:
        chosen = next((o for o in options if o.digit == digit), None)
        if chosen is None or not chosen.options:
            return None
        options = chosen.options
    return options


def _label(option: MenuOption, state: CallState, rules: Rules) -> str:
    if option.label:
        return localized(option.label, state.language, rules)
    department = rules.departments.get(option.department or "")
    return localized(department.name, state.language, rules) if department else option.digit


def show_menu(state: CallState, path: str, rules: Rules, reason: str,
              reprompt: str | None = None) -> Decision:
    """The keypad menu at `path`; an unknown path falls back to the top level."""
    options = menu_options(rules, path)
    if options is None:
        path, options = "", rules.menu
    listed = tuple((o.digit, _label(o, state, rules)) for o in options)
    new_state = replace(state, step="menu", menu_path=path, retries=0 if reprompt is None else state.retries)
    return Decision(Menu(path, listed, reprompt), new_state, reason)


