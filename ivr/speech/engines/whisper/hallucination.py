"""What keeps Whisper's hallucinations out of routing: what its output must look like to be believed.

Whisper was trained on subtitles, so silence, hiss or a cough can come back as "Thank you." or a
looping sentence. Here: the level gate (`peak_rms` against `SPEECH_RMS`), a token cap proportional
to the audio (`max_tokens`), and per-segment checks (no-speech probability, mean log-probability,
gzip compression ratio for loops) that drop what the model was not hearing (`combine`). The VAD
span is the engine's (`WhisperEngine.speech_span`).
"""
from __future__ import annotations

import math
import re
from typing import Any, Iterable

import numpy as np

from ivr.speech.engines.base import Result
from ivr.speech.engines.whisper.models import MODEL_RATE

#: No level above this (PCM16 RMS over 20 ms) → nothing was said; the model is not even run.
#: The endpointer counts speech from 400; this is lower, so quiet callers still get decoded.
SPEECH_RMS = 180.0
#: Per segment: dropped when the model says it heard no speech and was unsure of its words
#: (Whisper's own rule: no-speech probability above 0.6 and mean token log-probability below −1)…
NO_SPEECH_PROB = 0.6
MIN_AVG_LOGPROB = -1.0
#: …or its words are this unlikely whatever it says about speech (exp(−2) ≈ 0.14: guessing).
#: Between −2 and −1 the words are kept with their low confidence, and `ivr.routing.decide`
#: confirms instead of routing (confidence below thresholds.confirm).
FLOOR_AVG_LOGPROB = -2.0
#: …or the text is this repetitive (gzip ratio; Whisper's own loop detector uses 2.4).
MAX_COMPRESSION_RATIO = 2.4
#: Silence kept either side of the speech VAD found: Whisper needs a little to place word edges.
SPAN_PAD_S = 0.4
#: Tokens allowed per second of audio (a fast talker says ~4 words ≈ 5–6 tokens a second), plus a
#: floor: a repetition loop stops here instead of filling the 448-token window.
TOKENS_PER_SECOND = 8
MIN_TOKENS = 16
MAX_TOKENS = 220

#: Annotations Whisper writes for non-speech ("[coughing]", "(laughs)", "*music*", "♪"): not words.
_ANNOTATION = re.compile(r"\[[^\]]*\]|\([^)]*\)|\*[^*]*\*|♪+")


def max_tokens(seconds: float) -> int:
    """The output cap for `seconds` of audio (one 30 s window at a time)."""
    return int(min(MAX_TOKENS, max(MIN_TOKENS, math.ceil(min(seconds, 30.0) * TOKENS_PER_SECOND))))


def peak_rms(audio: np.ndarray, frame: int = MODEL_RATE // 50) -> float:
    """The loudest 20 ms of `audio` (float, full scale 1.0) as RMS."""
    usable = audio[: audio.size // frame * frame]
    if usable.size == 0:
        return float(np.sqrt(np.mean(np.square(audio)))) if audio.size else 0.0
    return float(np.sqrt(np.mean(np.square(usable.reshape(-1, frame)), axis=1)).max())


def believable(segment: Any) -> bool:
    """Whether a decoded segment is speech the model heard, not text it made up."""
    if segment.no_speech_prob > NO_SPEECH_PROB and segment.avg_logprob < MIN_AVG_LOGPROB:
        return False
    if segment.avg_logprob < FLOOR_AVG_LOGPROB:
        return False
    return segment.compression_ratio <= MAX_COMPRESSION_RATIO


def clean_text(text: str) -> str:
    """The words of a segment: annotations for non-speech removed, spacing normalised."""
    return " ".join(_ANNOTATION.sub(" ", text).split())


def combine(segments: Iterable[Any]) -> Result:
    """One `Result` from faster-whisper segments: believable ones only; confidence is the
    duration-weighted mean of exp(avg_logprob), the model's own per-token certainty."""
    texts: list[str] = []
    weight = score = 0.0
    for segment in segments:
        text = clean_text(segment.text)
        if not text or not any(ch.isalnum() for ch in text) or not believable(segment):
            continue
        texts.append(text)
        duration = max(segment.end - segment.start, 0.1)
        weight += duration
        score += duration * math.exp(segment.avg_logprob)
    if not texts:
        return Result("", 0.0)
    return Result(" ".join(texts), round(score / weight, 3))
