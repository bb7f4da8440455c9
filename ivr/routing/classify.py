"""Caller text (or digits) → ranked intents with confidence and a human explanation.

Pure: built once from `Rules` when they load (no training step, no network).
CONTRACT (implementation pending): see docs/architecture.md.
"""
from __future__ import annotations

from dataclasses import dataclass

from ivr.routing.rules import Rules


@dataclass(frozen=True)
class Candidate:
    intent: str | None         # intent id (None for the emergency pseudo-intent)
    department: str | None
    confidence: float          # 0..1
    explanation: str           # "matched 'pothole' (roads keyword)"


@dataclass(frozen=True)
class Classification:
    text: str
    language: str
    emergency: bool
    candidates: tuple[Candidate, ...]   # best first; empty when nothing matched
    explanation: str

    @property
    def top(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None

    @property
    def confidence(self) -> float:
        return self.candidates[0].confidence if self.candidates else 0.0


class Classifier:
    """Learns from the rules' keywords and examples; `classify` is pure and fast (p99 ≤ 1 ms)."""

    def __init__(self, rules: Rules) -> None:
        self.rules = rules

    def classify(self, text: str, language: str) -> Classification:
        raise NotImplementedError


def interpret_yes_no(text: str | None, digits: str | None, language: str) -> bool | None:
    """"yes"/"sí"/1 → True, "no"/2 → False, anything else → None."""
    raise NotImplementedError


def interpret_language(text: str | None, digits: str | None, rules: Rules) -> str | None:
    """"español"/"Spanish"/2 → "es", "English"/1 → "en", else None."""
    raise NotImplementedError
