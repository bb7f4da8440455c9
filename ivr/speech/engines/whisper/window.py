"""A shorter encoder window than Whisper's 30 s, for short caller turns (IVR_WHISPER_WINDOW_S)."""
from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

FULL_WINDOW_FRAMES = 3000


def window_frames() -> int:
    """The shortest encoder window used (IVR_WHISPER_WINDOW_S; 0 or 30 = the full 30 s window)."""
    raw = os.environ.get("IVR_WHISPER_WINDOW_S", "").strip()
    try:
        seconds = float(raw) if raw else DEFAULT_WINDOW_S
    except ValueError:
        log.error("IVR_WHISPER_WINDOW_S=%r is not a number of seconds; using %.0f s", raw, DEFAULT_WINDOW_S)
        seconds = DEFAULT_WINDOW_S
    return FULL_WINDOW_FRAMES if seconds <= 0 else min(FULL_WINDOW_FRAMES, int(seconds * 100) // 2 * 2)


#: Why a shorter window: the encoder's cost grows with its input, and faster-whisper always gives
#: it 30 s — a 3 s caller turn paid for 27 s of padding. CTranslate2 accepts a shorter input (as
#: whisper.cpp's audio_ctx does). Measured 2026-12-01 on bench/data/unseen_en.jsonl (tiny.en,
#: `bench/asr.py --set unseen_en --conditions clean,noise`, IVR_WHISPER_WINDOW_S=…), CPU RTF per
#: audio second: 30 s: clean 92.9 %, noise 90.0 % (WER 13.6 %), CPU RTF 0.105; 20 s: noise 87.1 %
#: (15.0 %), 0.057; 15 s: noise 88.6 % (16.8 %), 0.056, emergencies 12/13 as at 30 s; 10 s: clean
#: 94.3 %, noise 82.9 % (33.5 %), 0.038. 15 s halves every decode for one noisy utterance in 70;
#: 10 s loses too much on noisy lines. IVR_WHISPER_WINDOW_S=30 restores the full window.
DEFAULT_WINDOW_S = 15.0


def short_window(encode: Any, min_frames: int) -> Any:
    """`encode` given only the frames that hold audio (plus 1 s), at least `min_frames`.

    faster-whisper pads the mel features with zero columns up to 30 s; real audio never makes
    a column of exact zeros, so the padding is found without knowing the audio's length, and the
    wrapper needs no per-call state (the model is shared by every call's thread).
    """
    def encode_short(features: Any) -> Any:
        if isinstance(features, np.ndarray) and features.shape[-1] == FULL_WINDOW_FRAMES:
            filled = np.flatnonzero(np.any(features.reshape(-1, FULL_WINDOW_FRAMES) != 0, axis=0))
            used = int(filled[-1]) + 1 if filled.size else 0
            keep = min(FULL_WINDOW_FRAMES, max(min_frames, used + 100))
            features = np.ascontiguousarray(features[..., : keep + keep % 2])
        return encode(features)
    return encode_short
