"""Phrase grammars for prompts with a closed set of answers, and hints from the routing rules.

Grammars are plain text files an admin edits: `grammars/<lang>/<name>.txt`, one phrase per line,
`#` comments, and a `!repeat` line for answers that are a sequence (digits). See grammars/README.md.
Engines compile a `Grammar` their own way (Vosk: a JSON phrase list; pocketsphinx: JSGF).
"""
from __future__ import annotations

from pathlib import Path

from ivr.routing.rules import Rules
from ivr.speech.engines.base import Grammar

#: Which grammar file each listening step uses; steps not listed use the free domain model.
STEP_GRAMMARS = {"confirm": "yes_no", "menu": "digits", "language": "language"}


class GrammarError(ValueError):
    """A grammar file that cannot be used, with the file and what to change."""


def load_grammar(grammars_dir: str | Path, language: str, name: str) -> Grammar:
    """Read `grammars_dir/<language>/<name>.txt` into a `Grammar`."""
    path = Path(grammars_dir) / language / f"{name}.txt"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise GrammarError(f"{path}: cannot read grammar ({exc.strerror}); create it with one "
                           "phrase per line (see grammars/README.md)") from exc
    phrases: list[str] = []
    repeat = False
    for line in lines:
        text = line.split("#", 1)[0].strip().lower()
        if text == "!repeat":
            repeat = True
        elif text:
            phrases.append(" ".join(text.split()))
    if not phrases:
        raise GrammarError(f"{path}: grammar has no phrases; add one phrase per line")
    return Grammar(name=f"{language}/{name}", phrases=tuple(dict.fromkeys(phrases)),
                   language=language, repeat=repeat)


def grammar_for_step(grammars_dir: str | Path, language: str, step: str) -> Grammar | None:
    """The grammar a listening step uses, or None for free speech (the "how can we help" turn)."""
    name = STEP_GRAMMARS.get(step)
    if name is None or not (Path(grammars_dir) / language / f"{name}.txt").exists():
        return None
    return load_grammar(grammars_dir, language, name)


def rules_phrases(rules: Rules, language: str) -> tuple[str, ...]:
    """Keywords, emergency phrases and department names: what routing listens for."""
    phrases: list[str] = []
    for intent in rules.intents:
        phrases += intent.keywords.get(language, ())
    phrases += rules.emergency.phrases.get(language, ())
    phrases += [d.name[language] for d in rules.departments.values() if language in d.name]
    return tuple(dict.fromkeys(p.lower() for p in phrases))


def twilio_hints(rules: Rules, language: str, grammar: Grammar | None = None, limit: int = 500) -> str:
    """The `hints` attribute for `<Gather input="speech">`: comma-separated phrases.

    Twilio accepts a list of words and phrases (each ≤ 100 characters); we keep the
    `limit` most important, the prompt's grammar first, then the routing phrases.
    """
    phrases = list(grammar.phrases) if grammar else []
    phrases += rules_phrases(rules, language)
    kept = [p for p in dict.fromkeys(phrases) if len(p) <= 100 and "," not in p]
    return ", ".join(kept[:limit])
