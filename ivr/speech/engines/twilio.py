"""Twilio's own speech recognition: used through `<Gather input="dtmf speech">`, not on our machine.

There is no local audio to decode, so `recognizer()` refuses; what this engine provides is the
`<Gather>` settings — a BCP-47 `language` Twilio accepts (a bare "en" is rejected with warning
13512) and phrase `hints` from the routing rules and the prompt's grammar.
"""
from __future__ import annotations

from ivr.routing.rules import Rules
from ivr.speech.engines.base import EngineUnavailable, Grammar, Recognizer
from ivr.speech.grammars import twilio_hints

#: Our language codes → the locale Twilio's `<Gather language>` expects. Languages missing here
#: have no Twilio speech recognition configured and fall back to the keypad.
TWILIO_LOCALES = {
    "en": "en-US", "es": "es-US", "fr": "fr-FR", "de": "de-DE", "it": "it-IT", "pt": "pt-BR",
    "ko": "ko-KR", "ja": "ja-JP", "zh": "zh-CN", "ru": "ru-RU", "pl": "pl-PL", "nl": "nl-NL",
    "vi": "vi-VN", "ar": "ar-EG", "hi": "hi-IN", "tl": "fil-PH",
}


class TwilioEngine:
    """Speech recognised by Twilio during `<Gather>`; we only describe how to ask for it."""

    name = "twilio"

    def __init__(self, language: str) -> None:
        if language not in TWILIO_LOCALES:
            raise EngineUnavailable(f"no Twilio speech locale is configured for {language!r}; "
                                    f"known: {', '.join(sorted(TWILIO_LOCALES))}")
        self.language = language
        self.locale = TWILIO_LOCALES[language]

    def recognizer(self, sample_rate: int, grammar: Grammar | None = None) -> Recognizer:
        """Always refuses: Twilio decodes inside the call, there is no audio here."""
        raise EngineUnavailable("Twilio recognises speech inside <Gather>; there is no local recogniser "
                                "for audio files or media streams. Install a Vosk model for "
                                f"{self.language!r} (`ivr models download`) to decode audio here")

    def gather_settings(self, rules: Rules, grammar: Grammar | None = None) -> dict[str, str]:
        """Attributes for `<Gather>`: language, hints, and the phone-call speech model."""
        return {"language": self.locale, "hints": twilio_hints(rules, self.language, grammar),
                "speech_model": "phone_call"}
