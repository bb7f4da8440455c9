"""What the line would do if a caller said this first: `ivr route` and the console's "try it".

Pure, like the rest of the core: the rules, the classifier and the time are arguments.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from ivr.routing.classify import Classifier
from ivr.routing.decide import decide
from ivr.routing.hours import city_timezone
from ivr.routing.load import load_rules
from ivr.routing.rules import Rules
from ivr.routing.state import CallState, Turn

MAX_ALTERNATIVES = 4


@dataclass
class Router:
    """Rules + classifier built once; `route` answers one utterance."""
    rules: Rules
    classifier: Classifier
    timezone: ZoneInfo

    @classmethod
    def load(cls, path: str) -> "Router":
        """Load and validate the rules (ConfigError lists every problem)."""
        rules = load_rules(path)
        return cls(rules, Classifier(rules), city_timezone(rules))

    def language(self, requested: str | None) -> str:
        """The requested language, or the rules' default; ValueError for one the rules do not offer."""
        language = requested or self.rules.default_language
        if language not in self.rules.languages:
            raise ValueError(f"unknown language {language!r}; the rules offer {', '.join(self.rules.languages)}")
        return language

    def route(self, text: str, language: str, now: datetime, asr_confidence: float | None = None,
              emergency_heard: str | None = None) -> dict[str, Any]:
        """Classify and decide as at the first "what are you calling about?" of a call.

        `emergency_heard`: the recogniser's emergency watch verdict (audio only; ivr.speech.emergency).
        """
        classification = self.classifier.classify(text, language)
        turn = Turn(speech=text, asr_confidence=asr_confidence, emergency_heard=emergency_heard)
        decision = decide(CallState(step="ask", language=language), turn, classification, now, self.rules)
        kind, reason = decision.action.kind, decision.reason
        if kind == "ask":
            # decide() asks once more before offering the keypad; `ivr route` reports where a first
            # answer leads among its eight outcomes, and for an answer it cannot place that is the menu.
            kind, reason = "menu", f"{reason}; asked again, then the keypad menu"
        top = next((c for c in classification.candidates if c.intent is not None), None)
        if kind == "emergency":
            department, intent = None, None
        elif kind == "menu":
            department, intent = None, top.intent if top else None
        else:
            department = getattr(decision.action, "department", None) or decision.state.department
            intent = decision.state.intent or (top.intent if top and top.department == department else None)
        alternatives = [{"intent": c.intent, "department": c.department, "confidence": c.confidence}
                        for c in classification.candidates[1:1 + MAX_ALTERNATIVES]]
        return {"text": text, "language": language, "intent": intent, "department": department,
                "confidence": round(classification.confidence, 3), "action": kind,
                "explanation": classification.explanation, "alternatives": alternatives,
                "reason": reason}
