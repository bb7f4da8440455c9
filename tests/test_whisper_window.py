"""The shorter Whisper encoder window: only the frames that hold audio (plus 1 s), never less than
the configured minimum, and anything that is not a padded 30 s window passes untouched."""
from __future__ import annotations

import numpy as np

from ivr.speech.engines.whisper.window import FULL_WINDOW_FRAMES, short_window


def padded(frames_with_audio: int) -> np.ndarray:
    features = np.zeros((80, FULL_WINDOW_FRAMES), dtype=np.float32)
    features[:, :frames_with_audio] = -0.5          # log-mel of real audio is never exactly 0
    return features


def widths(min_frames: int, features: np.ndarray) -> int:
    seen = []
    short_window(lambda f: seen.append(f.shape[-1]), min_frames)(features)
    return seen[0]


def test_a_short_utterance_is_encoded_in_the_minimum_window():
    assert widths(1000, padded(300)) == 1000


def test_a_longer_one_keeps_all_its_audio_and_a_second_more():
    assert widths(1000, padded(1500)) == 1600


def test_nearly_thirty_seconds_is_the_full_window():
    assert widths(1000, padded(2950)) == FULL_WINDOW_FRAMES


def test_batches_and_other_lengths_pass_through():
    assert widths(1000, np.zeros((80, 1200), dtype=np.float32)) == 1200
    batch = np.stack([padded(200), padded(800)])
    assert widths(1000, batch) == 1000          # the batch's longest audio decides
