"""Every prompt text that can be known before a call: what `ivr prompts build` renders. Pure.

A prompt is "fixed" when its placeholders can all be filled from routing_rules.yaml:
no placeholders, {advisory}, {description} per intent, {label}/{digit} per menu option,
{department} (and {hours}) per department, {service} per intent (the report read back: "your
report about a pothole is filed"), {topic} per alert topic, {digit} alone per after-hours offer.
Prompts with per-call values ({position}, {minutes}, {case}, an alert's {message}) are rendered
when a call needs them (in the background: no webhook waits; a case number is put together from
digits synthesised once, ivr/voices/style.py). The values are filled exactly as the call flow fills
them (localised names, `hours_text`), so the flow's texts hit the cache.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

from ivr.prompts.catalogue import Prompt, fill


@dataclass(frozen=True)
class FixedText:
    """One text to render: which prompt it came from, the words, and whose voice says them."""
    key: str
    text: str
    voice: str


Values = dict[str, str]


def _localized(texts: Any, language: str, default: str) -> str:
    """A rules text in `language`, the default language when missing (as the flow does)."""
    if isinstance(texts, str):
        return texts
    mapping = dict(texts or {})
    return str(mapping.get(language) or mapping.get(default) or next(iter(mapping.values()), ""))


def _menu_values(options: Any, rules: Any, language: str) -> Iterator[Values]:
    """Label and digit of every menu entry, sub-menus included."""
    for option in options:
        label = _localized(option.label, language, rules.default_language) if option.label else ""
        if not label and option.department in rules.departments:
            label = _localized(rules.departments[option.department].name, language, rules.default_language)
        yield {"label": label or option.digit, "digit": option.digit}
        yield from _menu_values(option.options, rules, language)


def value_sets(rules: Any, language: str,
               hours_text: Callable[[Any, str], str] | None = None) -> dict[frozenset[str], list[Values]]:
    """Placeholder set → every way the rules can fill it in `language`."""
    default = rules.default_language
    departments = list(rules.departments.values())
    names = [{"department": _localized(d.name, language, default)} for d in departments]
    sets: dict[frozenset[str], list[Values]] = {
        frozenset({"advisory"}): [{"advisory": _localized(rules.emergency.advisory, language, default)}],
        frozenset({"description"}): [{"description": _localized(i.description, language, default)}
                                     for i in rules.intents],
        frozenset({"label", "digit"}): list(_menu_values(rules.menu, rules, language)),
        frozenset({"department"}): names,
        # ReadCase.service: the intent's description, as a sentence says it (ivr.routing.report).
        frozenset({"service"}): [{"service": _localized(i.description, language, default)}
                                 for i in rules.intents if i.service_code],
        frozenset({"topic"}): [{"topic": _localized(t.name, language, default)} for t in rules.topics],
        # The after-hours offers (report, message, call back) are numbered 1, 2, 3 in offer order.
        frozenset({"digit"}): [{"digit": str(n)} for n in range(1, 4)],
    }
    if hours_text is not None:
        sets[frozenset({"department", "hours"})] = [
            {**name, "hours": hours_text(d, language)} for name, d in zip(names, departments)]
    return sets


def fixed_texts(prompts: Mapping[str, Prompt], language: str, rules: Any | None = None,
                hours_text: Callable[[Any, str], str] | None = None) -> list[FixedText]:
    """Distinct texts of one language's prompts knowable ahead (without rules: no placeholders only)."""
    sets = value_sets(rules, language, hours_text) if rules is not None else {}
    seen: set[tuple[str, str]] = set()
    result: list[FixedText] = []
    for key, prompt in sorted(prompts.items()):
        used = prompt.placeholders
        for values in ([{}] if not used else sets.get(used, [])):
            text = fill(prompt, values)
            if text.strip() and (text, prompt.voice) not in seen:
                seen.add((text, prompt.voice))
                result.append(FixedText(key, text, prompt.voice))
    return result
