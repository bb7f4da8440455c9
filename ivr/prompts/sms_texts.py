"""The SMS channel's words: prompts/sms/<lang>.yaml → filled texts, and `ivr check`'s problems with them.

A flat mapping `key: "text with {placeholders}"` per language. The conversation
(`ivr.routing.sms_dialogue`) answers with parts `(key, values)`; `fill` turns them into one text.
Files are re-read when they change (checked at most once a second), like the voice prompts.
"""
from __future__ import annotations

import string
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import yaml

from ivr.routing.problems import Problem

#: Every key the SMS channel uses → the placeholders its text may use.
KEYS: Mapping[str, frozenset[str]] = {
    "help": frozenset({"topics"}), "stopped": frozenset(), "started": frozenset(), "language_set": frozenset(),
    "emergency": frozenset({"advisory"}), "ask_location": frozenset({"service"}),
    "confirm": frozenset({"description"}), "choose": frozenset({"choices"}),
    "choice": frozenset({"digit", "description"}), "describe_again": frozenset(), "not_understood": frozenset(),
    "no_service": frozenset({"department", "description"}),
    "opened": frozenset({"case", "service", "address", "department"}),
    "closed_now": frozenset({"department", "hours"}), "alert_note": frozenset({"alert"}),
    "status_hint": frozenset({"case"}),
    "status_open": frozenset({"case", "service", "department"}),
    "status_acknowledged": frozenset({"case", "service", "department"}),
    "status_closed": frozenset({"case", "service", "department"}),
    "status_note": frozenset({"note"}), "status_unknown": frozenset({"case"}), "status_bad": frozenset({"written"}),
    "subscribed": frozenset({"topic", "keyword"}), "unsubscribed": frozenset({"topic", "keyword"}),
    "topics": frozenset({"topics", "example"}), "unknown_topic": frozenset({"word", "topics", "example"}),
    "empty": frozenset({"limit"}), "media_only": frozenset({"limit"}), "too_long": frozenset({"limit"}),
    "no_words": frozenset({"limit"}), "error": frozenset(),
    "alert": frozenset({"topic", "message", "keyword"}),
}
Part = tuple[str, Mapping[str, Any]]


def sms_dir(prompts_dir: str | Path) -> Path:
    return Path(prompts_dir) / "sms"


def parse(path: Path) -> tuple[dict[str, str], list[Problem]]:
    """One language's texts and the problems in the file (with lines)."""
    shown = str(path)
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"))
    except OSError as exc:
        return {}, [Problem(shown, 0, f"cannot read the SMS texts ({exc.strerror}); create it from prompts/sms/en.yaml")]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        return {}, [Problem(shown, mark.line + 1 if mark else 0, f"not valid YAML: {getattr(exc, 'problem', exc)}")]
    if not isinstance(root, yaml.MappingNode):
        return {}, [Problem(shown, 1, "must be a mapping of text key → text")]
    texts: dict[str, str] = {}
    problems: list[Problem] = []
    for key_node, value_node in root.value:
        key, line = str(key_node.value), key_node.start_mark.line + 1
        if key not in KEYS:
            problems.append(Problem(shown, line, f"unknown SMS text '{key}' — the keys are: {', '.join(KEYS)}"))
            continue
        if not isinstance(value_node, yaml.ScalarNode) or not str(value_node.value).strip():
            problems.append(Problem(shown, line, f"SMS text '{key}' must be a non-empty text"))
            continue
        text = str(value_node.value)
        try:
            used = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
        except ValueError as exc:
            problems.append(Problem(shown, line, f"SMS text '{key}': malformed braces ({exc}); write {{name}}"))
            continue
        unknown = sorted(used - KEYS[key])
        if unknown:
            allowed = ", ".join("{%s}" % a for a in sorted(KEYS[key])) or "none"
            problems.append(Problem(shown, line, f"SMS text '{key}': unknown placeholder {{{unknown[0]}}}; allowed: {allowed}"))
            continue
        texts[key] = text
    for key in KEYS:
        if key not in texts and not any(p.message.startswith(f"SMS text '{key}'") for p in problems):
            problems.append(Problem(shown, 0, f"SMS text '{key}' is missing — add it (see prompts/sms/en.yaml)"))
    return texts, problems


def check_sms_texts(prompts_dir: str | Path, languages: Iterable[str]) -> list[Problem]:
    """Every problem with the SMS texts of the line's languages (for `ivr check`)."""
    problems: list[Problem] = []
    for language in languages:
        problems += parse(sms_dir(prompts_dir) / f"{language}.yaml")[1]
    return problems


def fill(texts: Mapping[str, str], parts: Sequence[Part]) -> str:
    """The parts' texts, filled and joined by spaces. A list value is a list of parts ("choices"),
    filled and joined with "; "."""
    out = []
    for key, values in parts:
        filled = {name: "; ".join(fill(texts, [p]) for p in value) if isinstance(value, list) else value
                  for name, value in values.items()}
        out.append(texts[key].format_map(_Blank(filled)))
    return " ".join(t.strip() for t in out if t.strip())


class _Blank(dict):  # type: ignore[type-arg]
    def __missing__(self, key: str) -> str:
        return ""


class SmsTexts:
    """The texts of every language, re-read when a file changes; the last good version stays in use."""

    def __init__(self, prompts_dir: str | Path, languages: Iterable[str]) -> None:
        self._dir = sms_dir(prompts_dir)
        self._languages = tuple(languages)
        self._lock = threading.Lock()
        self._stamp: tuple[Any, ...] | None = None
        self._texts: dict[str, dict[str, str]] = {}
        self._checked = 0.0

    @property
    def languages(self) -> tuple[str, ...]:
        return self._languages

    def _mtimes(self) -> tuple[Any, ...]:
        return tuple((lang, (self._dir / f"{lang}.yaml").stat().st_mtime_ns
                      if (self._dir / f"{lang}.yaml").exists() else 0) for lang in self._languages)

    def texts(self, language: str) -> Mapping[str, str]:
        """The texts of `language` (falling back to the first language for a missing key)."""
        with self._lock:
            if time.monotonic() - self._checked >= 1.0 or not self._texts:
                self._checked = time.monotonic()
                stamp = self._mtimes()
                if stamp != self._stamp:
                    loaded = {lang: parse(self._dir / f"{lang}.yaml")[0] for lang in self._languages}
                    if all(loaded.values()):
                        self._texts, self._stamp = loaded, stamp
            first = self._texts.get(self._languages[0], {})
            own = self._texts.get(language, {})
        return {**first, **own}

    def render(self, language: str, parts: Sequence[Part]) -> str:
        return fill(self.texts(language), parts)
