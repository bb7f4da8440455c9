"""Endpointing on audio time: barge-in, early end on a settled confident partial, silence, guards."""
from __future__ import annotations

import numpy as np
import pytest

from ivr.speech.endpointing import EndpointConfig, Endpointer, frame_rms

FRAME = 160  # samples per 20 ms at 8 kHz


def voice(level: int = 3000) -> bytes:
    t = np.arange(FRAME)
    return (level * np.sin(2 * np.pi * 220 * t / 8000)).astype("<i2").tobytes()


SILENCE = bytes(2 * FRAME)


def feed(ep: Endpointer, frame: bytes, count: int) -> list:
    return [s for s in (ep.audio(frame) for _ in range(count)) if s]


def test_frame_rms():
    assert frame_rms(SILENCE) == 0.0
    assert frame_rms(voice(1000)) == pytest.approx(1000 / np.sqrt(2), rel=0.02)
    assert frame_rms(b"") == 0.0


def test_speech_signal_once_after_sustained_voice():
    ep = Endpointer()
    assert feed(ep, voice(), 3) == []          # 60 ms < barge_in_ms
    signals = feed(ep, voice(), 10)
    assert [s.kind for s in signals] == ["speech"]


def test_trailing_silence_ends_turn_without_a_confident_partial():
    ep = Endpointer(EndpointConfig(trailing_silence_ms=300))
    feed(ep, voice(), 50)
    ep.partial("something odd", ep.now_ms, destination=None)
    signals = feed(ep, SILENCE, 14)            # 280 ms
    assert signals == []
    end = feed(ep, SILENCE, 1)[0]
    assert (end.kind, end.reason) == ("end", "silence")
    assert feed(ep, SILENCE, 5) == []          # ends once


def test_early_end_when_partial_is_settled_and_confident():
    ep = Endpointer(EndpointConfig(early_silence_ms=120, stable_ms=100))
    feed(ep, voice(), 50)                      # 1000 ms of talking
    ep.partial("pothole on main street", ep.now_ms, destination="roads")
    feed(ep, SILENCE, 6)                       # 120 ms pause, but decoder has not heard it yet
    assert ep.check() is None
    ep.partial("pothole on maine street", ep.now_ms, destination="roads")   # words settle
    end = ep.check()
    assert (end.kind, end.reason, end.at_ms) == ("end", "early", 1120)


def test_no_early_end_while_the_destination_is_still_changing():
    ep = Endpointer()
    feed(ep, voice(), 50)
    feed(ep, SILENCE, 8)
    ep.partial("the light", ep.now_ms - 60, destination=None)
    ep.partial("the light is out", ep.now_ms, destination="streetlights")
    assert ep.check() is None
    end = feed(ep, SILENCE, 12)[-1]            # falls back to trailing silence
    assert end.reason == "silence"


def test_no_early_end_without_a_confident_destination():
    ep = Endpointer()
    feed(ep, voice(), 50)
    ep.partial("um well", ep.now_ms, destination=None)
    feed(ep, SILENCE, 10)
    ep.partial("um well", ep.now_ms, destination=None)
    assert ep.check() is None


def test_no_input_counts_from_end_of_prompt():
    ep = Endpointer(EndpointConfig(no_input_ms=1000))
    assert feed(ep, SILENCE, 200) == []        # prompt still playing: 4 s, no timeout
    ep.prompt_finished()
    assert feed(ep, SILENCE, 49) == []
    assert feed(ep, SILENCE, 1)[0].reason == "no_input"


def test_click_is_noise_not_a_turn():
    ep = Endpointer(EndpointConfig(no_input_ms=2000))
    ep.prompt_finished()
    feed(ep, voice(), 5)                       # 100 ms burst: a "speech" signal (barge-in) …
    signals = feed(ep, SILENCE, 100)           # 2.1 s since the prompt ended
    assert [s.reason for s in signals] == ["no_input"]  # … but no turn from it


def test_max_turn_length():
    ep = Endpointer(EndpointConfig(max_turn_ms=1000))
    signals = feed(ep, voice(), 60)
    assert [s.kind for s in signals] == ["speech", "end"]
    assert signals[-1].reason == "max_length"


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="early_silence_ms"):
        EndpointConfig(early_silence_ms=500, trailing_silence_ms=300)
    with pytest.raises(ValueError, match="no_input_ms"):
        EndpointConfig(no_input_ms=0)
