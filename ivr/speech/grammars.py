"""Phrase grammars for prompts with a closed set of answers (yes/no, digits, language names).

Grammars are plain text files an admin edits: `grammars/<lang>/<name>.txt`, one phrase per line,
`#` comments, and a `!repeat` line for answers that are a sequence (digits). See grammars/README.md.
Engines compile a `Grammar` their own way (Vosk: a JSON phrase list; pocketsphinx: JSGF).
"""
from __future__ import annotations

from pathlib import Path

from ivr.speech.engines.base import Grammar

#: Which grammar file each listening step uses; steps not listed use the free domain model.
#: `welcome` is free speech on purpose: the greeting asks for a language, but callers may skip it
#: and say what they want. `callback` ("shall we call you back?") is a yes/no question.
STEP_GRAMMARS = {"confirm": "yes_no", "callback": "yes_no", "menu": "digits", "language": "language"}


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
