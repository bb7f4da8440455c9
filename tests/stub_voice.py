"""A stand-in voice for prompt tests: records what it is asked to say, and can fail or block.

`Renderer(block=True)` holds every synthesis until `release` is set, so a test can show that a
webhook answers while the voice is stuck; `started` is set by the first synthesis.
"""
from __future__ import annotations

import threading

import numpy as np

from ivr.voices import Speaker, TTSError


class Renderer:
    """Stub engine for both languages: records (text, voice) per call; can fail, or block until released."""
    splits = False
    phonemes = False

    def __init__(self, fail: bool = False, block: bool = False) -> None:
        self.calls: list[tuple[str, str]] = []
        self.fail = fail
        self.started = threading.Event()    # set by the first synthesis
        self.release = threading.Event()
        if not block:
            self.release.set()

    def engine(self, voice: str, language: str) -> "StubEngine":
        return StubEngine(self, voice, language)

    def speakers(self) -> dict[str, Speaker]:
        """An English and a Spanish speaker with this engine (Twilio's <Say> voices as fallback)."""
        return {"en": Speaker("en", self.engine("gmw/en-us", "en"), "en-US"),
                "es": Speaker("es", self.engine("roa/es-419", "es"), "es-MX")}


class StubEngine:
    splits = False
    phonemes = False

    def __init__(self, renderer: Renderer, voice: str, language: str) -> None:
        self.renderer, self.voice, self.language, self.id = renderer, voice, language, f"stub:{voice}"

    def problem(self) -> None:
        return None

    def synthesize(self, text: str, slowness: float) -> tuple[np.ndarray, int]:
        """Half a second of a 440 Hz tone, after `release` (at most 10 s, so a failed test cannot hang)."""
        self.renderer.calls.append((text, self.voice))
        self.renderer.started.set()
        self.renderer.release.wait(10)
        if self.renderer.fail:
            raise TTSError("engine exploded")
        t = np.arange(4000) / 8000
        return (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 8000
