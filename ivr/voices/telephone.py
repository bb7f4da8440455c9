"""Speech → what the phone line plays: 8 kHz, level-normalised, μ-law WAV.

Every prompt is brought to the same active speech level (the RMS of the 20 ms frames that
carry speech, −20 dBFS), so a caller never has to reach for the volume between prompts, and
peaks above −1 dBFS are softly limited instead of clipped. `level_db` is the same measure,
used by the tests and the benchmark.
"""
from __future__ import annotations

import numpy as np

from ivr.speech.audio import Audio, parse_wav, pcm16_to_ulaw, resample, to_pcm16, wav_bytes

RATE = 8000
#: Active speech level every prompt is brought to, in dB relative to full scale.
TARGET_DBFS = -20.0
#: Peaks above this (dBFS) are compressed smoothly instead of clipped.
LIMIT_DBFS = -1.0
_FULL = 32767.0
_FRAME = RATE // 50          # 20 ms
#: Frames quieter than the loudest by more than this are pauses, not speech.
_ACTIVE_RANGE_DB = 30.0


class SilentAudio(ValueError):
    """The engine produced nothing audible."""


def _frames_rms(samples: np.ndarray) -> np.ndarray:
    usable = samples[: samples.size // _FRAME * _FRAME].reshape(-1, _FRAME)
    return np.sqrt((usable.astype(np.float64) ** 2).mean(axis=1)) if usable.size else np.zeros(0)


def level_db(samples: np.ndarray) -> float:
    """Active speech level of 8 kHz int16-scale samples, dBFS (−inf for silence)."""
    rms = _frames_rms(np.asarray(samples, dtype=np.float64))
    if rms.size == 0 or rms.max() <= 1.0:
        return float("-inf")
    active = rms[rms >= rms.max() * 10 ** (-_ACTIVE_RANGE_DB / 20)]
    return float(20 * np.log10(np.sqrt((active ** 2).mean()) / _FULL))


def _limit(samples: np.ndarray) -> np.ndarray:
    threshold = _FULL * 10 ** (LIMIT_DBFS / 20)
    magnitude = np.abs(samples)
    over = magnitude > threshold
    if not over.any():
        return samples
    headroom = _FULL - threshold
    squeezed = threshold + headroom * np.tanh((magnitude[over] - threshold) / headroom)
    result = samples.copy()
    result[over] = np.sign(samples[over]) * squeezed
    return result


def assemble(parts: list[tuple[np.ndarray, int, float]], lead_s: float, tail_s: float) -> np.ndarray:
    """Pieces of speech (float samples any scale, their rate, silence after) → one 8 kHz track."""
    track = [np.zeros(int(lead_s * RATE), dtype=np.float32)]
    for samples, rate, pause_s in parts:
        track.append(resample(np.asarray(samples, dtype=np.float32), rate, RATE))
        track.append(np.zeros(int(pause_s * RATE), dtype=np.float32))
    track.append(np.zeros(int(tail_s * RATE), dtype=np.float32))
    return np.concatenate(track)


def normalised(samples: np.ndarray) -> np.ndarray:
    """8 kHz samples brought to TARGET_DBFS active level (int16 scale), peaks limited."""
    level = level_db(samples * (_FULL / max(float(np.abs(samples).max()), 1e-9)))
    if not np.isfinite(level):
        raise SilentAudio("the engine produced silence")
    peak_scaled = samples * (_FULL / float(np.abs(samples).max()))
    return _limit(peak_scaled * 10 ** ((TARGET_DBFS - level) / 20))


def phone_wav(samples: np.ndarray) -> bytes:
    """8 kHz samples → normalised 8-bit μ-law mono WAV bytes (what <Play> fetches)."""
    return wav_bytes(Audio(to_pcm16(normalised(samples)), RATE), ulaw=True)


def ulaw_payload(wav: bytes) -> bytes:
    """Raw 8 kHz μ-law samples of a WAV (what Media Streams `media` messages carry)."""
    return pcm16_to_ulaw(parse_wav(wav, "prompt audio").at_rate(RATE).pcm16)
