"""Text → 8 kHz μ-law WAV with pyttsx3 (espeak-ng on Linux), rendered in a child process.

pyttsx3's `runAndWait` can hang, and espeak-ng initialises once per process and is not
thread-safe, so every render runs `tts_child.py` in a subprocess with a timeout: a stuck
engine costs one killed child, never a stuck web worker. pyttsx3 2.99 occasionally ends
its loop without writing the file, so a render that produced nothing is tried once more.

The μ-law/resampling helpers here are small and self-contained because `ivr/speech/audio.py`
did not exist when this was written; fold them into it once it does.
"""
from __future__ import annotations

import ctypes.util
import io
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

CHILD = Path(__file__).with_name("tts_child.py")
ATTEMPTS = 2
SAMPLE_RATE = 8000
WAVE_FORMAT_MULAW = 7
#: espeak-ng voice per language (pyttsx3 voice ids); IVR_TTS_VOICE_<LANG> overrides.
DEFAULT_VOICES = {"en": "gmw/en-us", "es": "roa/es-419"}
_ULAW_BIAS = 0x84
_ULAW_CLIP = 32635


class TTSError(RuntimeError):
    """Rendering is impossible right now: no engine, unknown voice, timeout, or silent output."""


def engine_problem() -> str | None:
    """Why pyttsx3 cannot render on this machine, or None when it can (cheap; no synthesis)."""
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
    if not text.strip():
        raise TTSError("nothing to say: the text is empty")
    deadline = time.monotonic() + timeout_s
    for attempt in range(1, ATTEMPTS + 1):
        try:
            pcm, rate_hz = _render_pcm(text, voice, rate, deadline - time.monotonic())
            break
        except _NoAudio as exc:
            if attempt == ATTEMPTS:
                raise TTSError(f"pyttsx3 wrote no audio ({exc}) in {ATTEMPTS} attempts") from None
    samples = resample(pcm, rate_hz, SAMPLE_RATE)
    if samples.size == 0 or int(np.abs(samples).max()) < 64:
        raise TTSError("pyttsx3 produced silence")
    return ulaw_wav(pcm16_to_ulaw(samples))


class _NoAudio(Exception):
    """The child exited cleanly but left no usable file (the pyttsx3 race); worth a retry."""


def _render_pcm(text: str, voice: str, rate: int, timeout_s: float) -> tuple[np.ndarray, int]:
    if timeout_s <= 0:
        raise TTSError("no time left to render")
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
            return read_pcm_wav(out.read_bytes())
        except (OSError, wave.Error, EOFError) as exc:
            raise _NoAudio(str(exc) or type(exc).__name__) from None


# --- audio helpers (dedupe into ivr/speech/audio.py) -------------------------------------

def read_pcm_wav(data: bytes) -> tuple[np.ndarray, int]:
    """Mono int16 samples and sample rate of a 16-bit PCM WAV (first channel if stereo)."""
    with wave.open(io.BytesIO(data)) as reader:
        if reader.getsampwidth() != 2:
            raise wave.Error(f"expected 16-bit PCM, got {8 * reader.getsampwidth()}-bit")
        frames = np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2")
        channels, rate_hz = reader.getnchannels(), reader.getframerate()
    return frames[::channels].astype(np.int16), rate_hz


def resample(samples: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """Band-limited resampling by FFT (drops everything above the new Nyquist, so no aliasing)."""
    if from_hz == to_hz or samples.size == 0:
        return samples.astype(np.int16)
    count = int(round(samples.size * to_hz / from_hz))
    spectrum = np.fft.rfft(samples.astype(np.float64))
    kept = spectrum[: count // 2 + 1]
    out = np.fft.irfft(kept, n=count) * (count / samples.size)
    return np.clip(np.round(out), -32768, 32767).astype(np.int16)


def pcm16_to_ulaw(samples: np.ndarray) -> bytes:
    """G.711 μ-law encoding of int16 samples (the classic Sun algorithm, vectorised)."""
    x = samples.astype(np.int32)
    sign = (x < 0).astype(np.int32) << 7
    magnitude = np.minimum(np.abs(x), _ULAW_CLIP) + _ULAW_BIAS
    exponent = np.clip(np.floor(np.log2(magnitude)).astype(np.int32) - 7, 0, 7)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8).tobytes()


def ulaw_to_pcm16(data: bytes) -> np.ndarray:
    """Decode G.711 μ-law bytes to int16 samples."""
    u = ~np.frombuffer(data, dtype=np.uint8).astype(np.int32) & 0xFF
    exponent, mantissa = (u >> 4) & 0x07, u & 0x0F
    magnitude = (((mantissa << 3) + _ULAW_BIAS) << exponent) - _ULAW_BIAS
    return np.where(u & 0x80, -magnitude, magnitude).astype(np.int16)


def ulaw_wav(ulaw: bytes) -> bytes:
    """A WAV file (format 7, μ-law, 8 kHz mono) around raw μ-law bytes; `wave` writes PCM only."""
    fmt = (WAVE_FORMAT_MULAW.to_bytes(2, "little") + (1).to_bytes(2, "little")
           + SAMPLE_RATE.to_bytes(4, "little") + SAMPLE_RATE.to_bytes(4, "little")
           + (1).to_bytes(2, "little") + (8).to_bytes(2, "little") + (0).to_bytes(2, "little"))
    # Non-PCM WAV files carry a `fact` chunk with the sample count.
    chunks = (b"fmt " + len(fmt).to_bytes(4, "little") + fmt
              + b"fact" + (4).to_bytes(4, "little") + len(ulaw).to_bytes(4, "little")
              + b"data" + len(ulaw).to_bytes(4, "little") + ulaw + (b"\0" if len(ulaw) % 2 else b""))
    return b"RIFF" + (4 + len(chunks)).to_bytes(4, "little") + b"WAVE" + chunks


def ulaw_from_wav(data: bytes) -> bytes:
    """The raw μ-law samples of a WAV made by `ulaw_wav` (ValueError for anything else)."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a WAV file")
    position, fmt_tag, rate_hz = 12, None, None
    while position + 8 <= len(data):
        chunk, size = data[position:position + 4], int.from_bytes(data[position + 4:position + 8], "little")
        body = data[position + 8:position + 8 + size]
        if chunk == b"fmt ":
            fmt_tag, rate_hz = int.from_bytes(body[:2], "little"), int.from_bytes(body[4:8], "little")
        elif chunk == b"data":
            if (fmt_tag, rate_hz) != (WAVE_FORMAT_MULAW, SAMPLE_RATE):
                raise ValueError(f"expected 8 kHz μ-law, got format {fmt_tag} at {rate_hz} Hz")
            return body
        position += 8 + size + (size % 2)
    raise ValueError("WAV file has no data chunk")
