"""The recogniser contract every engine meets, and the shared decoding thread pool.

An `Engine` holds one model per language for the whole process; `engine.recognizer(rate, grammar)`
makes a cheap per-call `Recognizer`. A recogniser is fed PCM16 with `accept` and closed with
`finish`. Decoding is CPU-bound C code; web edges run it in the decode pool (`ivr.speech.pool`)
so the websocket loop never waits for it. Vosk releases the GIL while decoding, so its calls spread over the cores;
pocketsphinx's binding holds it, so one process decodes on one core (run a worker per core).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


class EngineUnavailable(RuntimeError):
    """The engine cannot run here (no model, library missing); the message says how to fix it."""


class EngineBusy(EngineUnavailable):
    """Every decoder is lent out right now; trying again at once (another grammar …) cannot help."""


@dataclass(frozen=True)
class Word:
    """One recognised word with its timing (seconds from the stream start) and confidence 0..1."""
    word: str
    start: float
    end: float
    confidence: float


@dataclass(frozen=True)
class Partial:
    """What the recogniser has heard so far; may still change."""
    text: str


@dataclass(frozen=True)
class Result:
    """The final hypothesis for an utterance. Empty `text` means nothing was recognised.

    `text` is the 1-best: what routing reads. `alternatives` are other readings of the same audio
    (the embedded engine's emergency watch) kept only as evidence for emergency detection
    (`ivr.speech.emergency`), never routed on.
    """
    text: str
    confidence: float
    words: tuple[Word, ...] = ()
    alternatives: tuple[str, ...] = ()


@dataclass(frozen=True)
class Grammar:
    """A closed set of phrases the caller may say at one prompt (yes/no, digits, languages …).

    `name` identifies it so engines can compile it once; `phrases` are lower-case word strings;
    `repeat` allows any sequence of phrases (digits) instead of exactly one.
    """
    name: str
    phrases: tuple[str, ...]
    language: str = "en"
    repeat: bool = False


def grammar_key(grammar: Grammar) -> str:
    """A short digest of a grammar's content, so engines recompile it when an admin edits it."""
    digest = hashlib.sha256(repr((grammar.phrases, grammar.repeat)).encode("utf-8"))
    return digest.hexdigest()[:12]


class SingleUse:
    """What every local recogniser shares: audio until `finish`, nothing after (an engine lends
    resources per use), and a partial only when the running text changed."""

    _done = False
    _text = ""

    def _changed(self, text: str) -> Partial | None:
        """A `Partial` for `text` if it differs from the last one reported, else None."""
        if text == self._text:
            return None
        self._text = text
        return Partial(text)

    def _check_open(self) -> None:
        if self._done:
            raise RuntimeError("recognizer already finished")

    def _close(self) -> None:
        """Mark finished; a second `finish` is a caller bug, so it raises."""
        self._check_open()
        self._done = True


def mean_confidence(words: tuple[Word, ...]) -> float:
    """An utterance's confidence: the mean of its words' (0 when there are none), 3 decimals."""
    return round(sum(w.confidence for w in words) / len(words), 3) if words else 0.0


@runtime_checkable
class Recognizer(Protocol):
    """One caller utterance being decoded. Not thread-safe: one call owns it."""

    sample_rate: int

    def accept(self, pcm16: bytes) -> Partial | None:
        """Feed little-endian PCM16 at `sample_rate`; returns a new partial when the text changed."""

    def finish(self) -> Result:
        """End of audio: the final result. The recogniser must not be used afterwards."""


@runtime_checkable
class Engine(Protocol):
    """One loaded model for one language, shared by every call in the process."""

    name: str          # "vosk" | "pocketsphinx" | "twilio"
    language: str

    def recognizer(self, sample_rate: int, grammar: Grammar | None = None) -> Recognizer:
        """A fresh per-call recogniser expecting PCM16 at `sample_rate`."""
