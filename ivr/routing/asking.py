"""Asking again, and what a caller's answer picks among spoken choices. Pure.

Shared by every dialogue of the call (`decide`, the after-hours report in `report`), so neither
imports the other: reprompts are counted the same way everywhere and never loop.
"""
from __future__ import annotations

import re
from dataclasses import replace
from typing import Iterable, Mapping

from ivr.lang import Language, fold
from ivr.routing.rules import Rules
from ivr.routing.state import CallState, Decision, Turn

#: Reprompts after no input / no match at one step before moving on (menu, then operator).
MAX_REPROMPTS = 2

_WORD = re.compile(r"[\w']+")


def reprompt_or(state: CallState, why: str, again: Decision, give_up: Decision) -> Decision:
    """Reprompt (counting retries) until MAX_REPROMPTS, then `give_up`."""
    if state.retries + 1 > MAX_REPROMPTS:
        return replace(give_up, reason=f"{why} {state.retries + 1} times; {give_up.reason}")
    return replace(again, state=replace(again.state, retries=state.retries + 1),
                   reason=f"{why} ({state.retries + 1} of {MAX_REPROMPTS} reprompts)")


def call_language(state: CallState, rules: Rules) -> Language:
    """The caller's language file (the default language's if the call's is no longer offered)."""
    return rules.language(state.language if state.language in rules.languages else rules.default_language)


def answer_languages(state: CallState, rules: Rules) -> list[Language]:
    """The caller's language first, then the others offered: callers answer in either."""
    first = call_language(state, rules)
    return [first] + [rules.language(c) for c in rules.languages if c != first.code]


def nothing_said(turn: Turn) -> bool:
    """No key, no words and no unrecognised speech: the caller stayed silent."""
    return not (turn.digits or "").strip() and not (turn.speech or "").strip() and not turn.unheard


def interpret_choice(turn: Turn, offered: Mapping[str, str], languages: Iterable[Language]) -> str | None:
    """Which of the `offered` choices (choice name → its key) the caller picked, or None.

    A key picks its choice. Words pick the choice whose phrase (the language files' `choices:`)
    is said as whole words; the longest phrase wins ("mensaje de texto" is a text, not a message).
    """
    digits = (turn.digits or "").strip()
    if digits:
        return next((choice for choice, key in offered.items() if key == digits[:1]), None)
    if not turn.speech:
        return None
    spaced = " " + " ".join(_WORD.findall(fold(turn.speech))) + " "
    best: tuple[int, str] | None = None
    for language in languages:
        for choice in offered:
            for phrase in language.choices.get(choice, ()):
                phrase = " ".join(_WORD.findall(phrase))
                if phrase and f" {phrase} " in spaced and (best is None or len(phrase) > best[0]):
                    best = (len(phrase), choice)
    return best[1] if best else None
