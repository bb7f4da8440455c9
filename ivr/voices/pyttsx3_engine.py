"""The universal engine: pyttsx3 (espeak-ng on Linux, the OS voice elsewhere), in a child process.

pyttsx3's `runAndWait` can hang, and espeak-ng initialises once per process and is not
thread-safe, so every render runs `pyttsx3_child.py` in a subprocess with a timeout: a stuck
engine costs one killed child, never a stuck web worker. pyttsx3 2.99 can end its loop
before espeak wrote the file (the child waits for espeak; see pyttsx3_child.py); a render
that still produced nothing is tried once more.

A process per render is too dear to call per comma, so this engine speaks a prompt whole
(`splits = False`): espeak pauses at commas itself.
"""
from __future__ import annotations

import ctypes.util
import functools
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ivr.speech.audio import Audio, AudioError, parse_wav, wav_bytes
from ivr.voices.engine import TTSError

CHILD = Path(__file__).with_name("pyttsx3_child.py")
ATTEMPTS = 2
SAMPLE_RATE = 8000


class Pyttsx3Engine:
    """One pyttsx3 voice (an espeak-ng voice id such as gmw/en-us) at a words-per-minute rate."""
    splits = False          # a process per call: speak the prompt whole
    phonemes = False        # espeak's [[ ]] notation is not IPA; the lexicon's respelling is used

    def __init__(self, voice: str, rate: int, language: str, timeout_s: float = 10.0) -> None:
        self.voice, self.rate, self.language, self.timeout_s = voice, int(rate), language, timeout_s
        self.id = f"pyttsx3:{voice}:{self.rate}"

    def problem(self) -> str | None:
        """Why this engine cannot speak here, or None."""
        return engine_problem()

    def synthesize(self, text: str, slowness: float) -> tuple[np.ndarray, int]:
        """(float samples in int16 scale, their rate) of `text`, `slowness` × slower than the rate."""
        audio = _render_checked(text, self.voice, int(round(self.rate / slowness)), self.timeout_s)
        return np.frombuffer(audio.pcm16, dtype="<i2").astype(np.float32), audio.sample_rate


@functools.lru_cache(maxsize=1)  # find_library runs ldconfig (~7 ms); every create_app asks
def engine_problem() -> str | None:
    """Why pyttsx3 cannot render on this machine, or None when it can (no synthesis)."""
    try:
        import pyttsx3  # noqa: F401  (imported only to prove it is installed)
    except ImportError:
        return "pyttsx3 is not installed (pip install pyttsx3)"
    if sys.platform.startswith("linux") and not (ctypes.util.find_library("espeak-ng")
                                                 or ctypes.util.find_library("espeak")):
        return "espeak-ng is not installed (apt-get install espeak-ng)"
    return None


def render_wav(text: str, voice: str, rate: int, timeout_s: float = 10.0) -> bytes:
    """Speak `text` with espeak voice `voice` at `rate` words/minute → 8 kHz μ-law WAV bytes.

    Raises TTSError when the engine is missing, the voice is unknown, the child exceeds
    `timeout_s`, or the result is silence.
    """
    phone = _render_checked(text, voice, rate, timeout_s).at_rate(SAMPLE_RATE)
    return wav_bytes(phone, ulaw=True)


def _render_checked(text: str, voice: str, rate: int, timeout_s: float) -> Audio:
    if not text.strip():
        raise TTSError("nothing to say: the text is empty")
    deadline = time.monotonic() + timeout_s
    for attempt in range(1, ATTEMPTS + 1):
        try:
            speech = _render_pcm(text, voice, rate, deadline - time.monotonic())
            break
        except _NoAudio as exc:
            if attempt == ATTEMPTS:
                raise TTSError(f"pyttsx3 wrote no audio ({exc}) in {ATTEMPTS} attempts") from None
    samples = np.frombuffer(speech.pcm16, dtype="<i2")
    if samples.size == 0 or int(np.abs(samples).max()) < 64:
        raise TTSError("pyttsx3 produced silence")
    return speech


class _NoAudio(Exception):
    """The child exited cleanly but left no usable file (the pyttsx3 race); worth a retry."""


def _render_pcm(text: str, voice: str, rate: int, timeout_s: float) -> Audio:
    if timeout_s <= 0:
        raise TTSError("pyttsx3 did not finish in time (no time left for a retry)")
    with tempfile.TemporaryDirectory(prefix="ivr-tts-") as tmp:
        out = Path(tmp) / "speech.wav"
        command = [sys.executable, str(CHILD), "--voice", voice, "--rate", str(int(rate)), str(out)]
        try:
            child = subprocess.run(command, input=text.encode("utf-8"), capture_output=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise TTSError("pyttsx3 did not finish in time; killed") from None
        if child.returncode != 0:
            detail = child.stderr.decode("utf-8", "replace").strip().splitlines()
            raise TTSError(f"pyttsx3 failed: {detail[-1] if detail else f'exit {child.returncode}'}")
        try:
            return parse_wav(out.read_bytes(), "pyttsx3 output")
        except (OSError, AudioError) as exc:
            raise _NoAudio(str(exc) or type(exc).__name__) from None
