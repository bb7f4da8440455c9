"""Twilio's own speech recognition: used through `<Gather input="dtmf speech">`, not on our machine.

There is no local audio to decode, so `recognizer()` refuses. What this engine knows is whether
Twilio can recognise a language at all, and the BCP-47 locale `<Gather language>` needs for it
(a bare "en" is rejected with warning 13512). The `<Gather hints>` are built by the web layer.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from ivr.lang import locale
from ivr.speech.engines.base import EngineUnavailable, Grammar, Recognizer


def twilio_locale(language: str, dirs: Iterable[str | Path] = ()) -> str | None:
    """The `<Gather language>` locale of `language`: `gather` in its language file
    (ivr/lang/<code>.yaml, or lang/ beside the rules). None: Twilio is not set up to hear it."""
    return locale(language, "gather", dirs)


class TwilioEngine:
    """Speech recognised by Twilio during `<Gather>`; we only describe how to ask for it."""

    name = "twilio"

    def __init__(self, language: str, dirs: Iterable[str | Path] = ()) -> None:
        found = twilio_locale(language, dirs)
        if not found:
            raise EngineUnavailable(f"no Twilio speech locale is configured for {language!r}: add "
                                    f"`gather:` to the locales of its language file ({language}.yaml)")
        self.language = language
        self.locale = found

    def recognizer(self, sample_rate: int, grammar: Grammar | None = None) -> Recognizer:
        """Always refuses: Twilio decodes inside the call, there is no audio here."""
        raise EngineUnavailable("Twilio recognises speech inside <Gather>; there is no local recogniser "
                                "for audio files or media streams. Install a Vosk model for "
                                f"{self.language!r} (`ivr models download`) to decode audio here")
