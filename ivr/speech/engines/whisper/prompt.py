"""Whisper's prompt: the rules' vocabulary, so the model spells the line's words the rules' way."""
from __future__ import annotations

from typing import Any

#: Prompt tokens kept: prompt + the start sequence (≤ 5) + MAX_TOKENS must fit Whisper's 448.
PROMPT_TOKENS = 180
#: The prompt built from the rules is cut to this many words (≈ 150 tokens), emergency words first.
PROMPT_WORDS = 150
#: Share of the prompt kept for the rules' emergency cues.
EMERGENCY_SHARE = 0.45

#: Words that do not make a prompt phrase new ("smoke in the" after "smoke" adds nothing).
_FUNCTION_WORDS = frozenset(
    "a an the in into on of to at is are was my our there it and or not no up down out coming inside "
    "see smell full el la los las un una en de del se está es mi y o no hay con por".split())


def bias_prompt(rules: Any, language: str, words: int = PROMPT_WORDS) -> str:
    """A short text of the rules' vocabulary for Whisper's prompt.

    Emergency cues come first (up to `EMERGENCY_SHARE` of the budget: those words matter most;
    each sharing no word with the ones before, so every kind of emergency gets in),
    then phrases taken in turns from each intent's keywords, the departments' names and the rest
    of the cues, so every kind of call is represented when the budget runs out. A phrase is only
    added when it brings a word not yet in the prompt ("house fire" after "fire, on fire" does not).
    Comma-separated phrases, not sentences: the model reads it as earlier context and spells those
    words the rules' way, and a list gives it no sentence to continue when the line is silent
    (tests/test_engine_whisper.py checks that).
    """
    if rules is None:
        return ""
    emergency = list(rules.emergency.phrases.get(language, ()))
    groups: list[list[str]] = [list(intent.keywords.get(language, ())) for intent in rules.intents]
    groups.append([d.name[language] for d in rules.departments.values() if language in d.name])
    kept: list[str] = []
    heard: set[str] = set()

    stems: set[str] = set()

    def add(phrase: str, limit: int, disjoint: bool = False) -> None:
        tokens = phrase.lower().split()
        content = set(tokens) - _FUNCTION_WORDS
        size = sum(len(k.split()) for k in kept)
        # A cue counts as new when no word of it shares its first 5 letters with one already in
        # (so "stabbed" after "stabbing" or "exploded" after "explosion" does not).
        new = not ({w[:5] for w in content} & stems) if disjoint else bool(content - heard)
        if content and new and size + len(tokens) <= limit:
            kept.append(" ".join(phrase.split()))
            heard.update(tokens)
            stems.update(w[:5] for w in content)

    # Short cues sharing no word with those already in, so fire, breathing, guns, gas … all fit.
    for phrase in emergency:
        if len(phrase.split()) <= 2:
            add(phrase, int(words * EMERGENCY_SHARE), disjoint=True)
    groups.append(emergency)
    for round_ in range(max((len(g) for g in groups), default=0)):
        for group in groups:
            if round_ < len(group):
                add(group[round_], words)
    return ", ".join(kept) + "." if kept else ""
