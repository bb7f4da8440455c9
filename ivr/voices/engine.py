"""What every voice engine offers, and the one error they raise.

An engine turns a piece of text into samples; everything around it (the lexicon, the
speaking style, the telephone level and codec, the cache) is the same for all of them:

    id          names the engine, voice and settings: part of every rendering's cache key
    splits      True when calling it once per comma is cheap (in-process), so pauses are ours
    phonemes    True when it reads IPA in `[[ … ]]` blocks (the lexicon's `phonemes`)
    language    the language the voice speaks ("en", "es"), checked against the prompt's
    problem()   why it cannot speak on this machine, or None
    synthesize(text, slowness) → (float samples, sample rate); slowness > 1 speaks slower
"""
from __future__ import annotations

from typing import Protocol

import numpy as np


class TTSError(RuntimeError):
    """Rendering is impossible right now: no engine, unknown voice, timeout, or silent output."""


class Engine(Protocol):
    id: str
    splits: bool
    phonemes: bool
    language: str

    def problem(self) -> str | None: ...

    def synthesize(self, text: str, slowness: float) -> tuple[np.ndarray, int]: ...
