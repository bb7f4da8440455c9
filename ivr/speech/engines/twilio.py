"""Twilio's own speech recognition: used through `<Gather input="dtmf speech">`, not on our machine.

There is no local audio to decode, so `recognizer()` refuses. What this engine knows is whether
Twilio can recognise a language at all, and the BCP-47 locale `<Gather language>` needs for it
(a bare "en" is rejected with warning 13512). The `<Gather hints>` are built by the web layer.
"""
from __future__ import annotations

from ivr.speech.engines.base import EngineUnavailable, Grammar, Recognizer

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
