"""Endpointing on audio time: barge-in, early end on a settled confident partial, silence, guards."""
from __future__ import annotations

import numpy as np
import pytest

from ivr.speech.endpointing import EndpointConfig, Endpointer, Signal, ends_open, frame_rms

FRAME = 160  # samples per 20 ms at 8 kHz


def voice(level: int = 3000) -> bytes:
    t = np.arange(FRAME)
    return (level * np.sin(2 * np.pi * 220 * t / 8000)).astype("<i2").tobytes()


SILENCE = bytes(2 * FRAME)


def feed(ep: Endpointer, frame: bytes, count: int, kinds: tuple[str, ...] = ("speech", "end")) -> list:
    """The signals of `kinds` (by default not the "pause"/"resume" that only decode triggers need)."""
    return [s for s in (ep.audio(frame) for _ in range(count)) if s and s.kind in kinds]


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
    ep = Endpointer(EndpointConfig(early_silence_ms=120, trailing_silence_ms=300))
    feed(ep, voice(), 50)
    feed(ep, SILENCE, 8)
    ep.partial("the light", ep.now_ms - 60, destination=None)
    ep.partial("the light is out", ep.now_ms, destination="streetlights")
    assert ep.check() is None
    end = feed(ep, SILENCE, 7)[-1]             # falls back to trailing silence (8 + 7 frames)
    assert (end.reason, end.at_ms) == ("silence", 1300)


def settled_pause(ep: Endpointer, text: str, destination: str, pause_frames: int) -> Signal | None:
    """Talk for 1 s, then pause with a partial that has held `destination` all along."""
    feed(ep, voice(), 50)
    ep.partial(text, ep.now_ms, destination=destination)
    feed(ep, SILENCE, pause_frames)
    ep.partial(text, ep.now_ms, destination=destination)
    return ep.check()


def test_default_early_pause_is_longer_than_a_gap_between_words():
    # 180 ms is a gap a fluent speaker leaves mid-sentence (the dev set's cut-offs): no end yet.
    assert settled_pause(Endpointer(), "my trash was not picked up", "sanitation", 9) is None
    end = settled_pause(Endpointer(), "my trash was not picked up", "sanitation", 10)
    assert (end.reason, end.at_ms) == ("early", 1200)


def test_no_early_end_on_a_word_that_leaves_the_sentence_open():
    ep = Endpointer()
    assert settled_pause(ep, "a pothole damaged my tire on the", "roads", 15) is None
    signals = feed(ep, SILENCE, 10)            # only the trailing silence ends it: 500 ms in all
    assert [(s.reason, s.at_ms) for s in signals] == [("silence", 1500)]


def test_emergency_ends_early_even_on_an_open_word():
    # Whatever follows "I smell gas in my", the call goes to 911: no reason to wait.
    end = settled_pause(Endpointer(), "I smell gas in my", "emergency", 10)
    assert (end.reason, end.at_ms) == ("early", 1200)


def test_ends_open():
    assert ends_open("the sidewalk is cracked and")
    assert ends_open("someone broke into my car THE.")
    assert not ends_open("someone dumped a mattress")
    assert not ends_open("")


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


# -- engines without partials (Whisper): one decode per utterance at the first pause -----------

ALL = ("speech", "pause", "resume", "end")


def test_pause_is_said_once_per_quiet_spell_and_resume_when_the_caller_goes_on():
    ep = Endpointer(EndpointConfig(pause_ms=100))
    assert [s.kind for s in feed(ep, voice(), 20, ALL)] == ["speech"]
    signals = feed(ep, SILENCE, 8, ALL)                  # 160 ms
    assert [(s.kind, s.at_ms) for s in signals] == [("pause", 500)]
    assert [s.kind for s in feed(ep, voice(), 5, ALL)] == ["resume"]
    assert [s.kind for s in feed(ep, SILENCE, 6, ALL)] == ["pause"]


def test_a_confident_whole_utterance_decode_ends_the_turn_after_the_early_pause():
    ep = Endpointer(EndpointConfig(pause_ms=100, early_silence_ms=200))
    feed(ep, voice(), 50)
    feed(ep, SILENCE, 5, ALL)                            # 100 ms: pause → the stream decodes
    ep.decoded("a pothole on main street", ep.now_ms, "roads")
    assert ep.check() is None                            # not yet 200 ms of quiet
    end = feed(ep, SILENCE, 5)[0]
    assert (end.reason, end.at_ms) == ("early", 1200)


def test_an_emergency_decode_ends_the_turn_at_once_even_on_an_open_word():
    ep = Endpointer(EndpointConfig(pause_ms=100))
    feed(ep, voice(), 50)
    feed(ep, SILENCE, 5, ALL)
    ep.decoded("my kitchen is on fire and", ep.now_ms, "emergency")
    end = ep.check()
    assert (end.kind, end.reason, end.at_ms) == ("end", "emergency", 1100)


def test_a_decode_the_caller_talked_past_is_ignored():
    ep = Endpointer(EndpointConfig(pause_ms=100, trailing_silence_ms=400))
    feed(ep, voice(), 50)
    feed(ep, SILENCE, 5, ALL)
    covered = ep.now_ms
    feed(ep, voice(), 10, ALL)                           # the caller goes on
    ep.decoded("my kitchen", covered, "emergency")      # the old decode arrives late
    assert ep.check() is None
    assert feed(ep, SILENCE, 10) == []                   # only the trailing silence ends it now
    assert feed(ep, SILENCE, 10)[0].reason == "silence"


def test_an_unsure_or_open_decode_waits_for_the_trailing_silence():
    ep = Endpointer(EndpointConfig(pause_ms=100, trailing_silence_ms=500))
    feed(ep, voice(), 50)
    feed(ep, SILENCE, 5, ALL)
    ep.decoded("there is a pothole on the", ep.now_ms, "roads")   # ends open
    assert feed(ep, SILENCE, 19) == []
    assert feed(ep, SILENCE, 1)[0].reason == "silence"


def test_a_young_pause_asks_for_an_idle_decode_then_a_queued_one():
    """At `speculate_ms` of quiet: decode if a thread is idle ("idle"); at `pause_ms`: decode, queued."""
    ep = Endpointer(EndpointConfig(speculate_ms=100, pause_ms=160))
    feed(ep, voice(), 20, ALL)
    signals = feed(ep, SILENCE, 10, ALL)                 # 200 ms
    assert [(s.kind, s.reason, s.at_ms) for s in signals] == [("pause", "idle", 500), ("pause", "", 560)]
    assert [s.kind for s in feed(ep, voice(), 5, ALL)] == ["resume"]


def test_a_pause_no_longer_than_the_speculative_one_is_said_once():
    ep = Endpointer(EndpointConfig(speculate_ms=150, pause_ms=100))
    feed(ep, voice(), 20, ALL)
    assert [(s.kind, s.reason) for s in feed(ep, SILENCE, 10, ALL)] == [("pause", "")]


def test_after_a_noise_burst_is_forgotten_the_next_voice_withdraws_its_decode():
    """A click decoded at its pause must not stand in for the words that follow: "resume"."""
    ep = Endpointer(EndpointConfig(pause_ms=100, trailing_silence_ms=300, min_speech_ms=160))
    assert [s.kind for s in feed(ep, voice(), 5, ALL)] == ["speech"]      # 100 ms: a burst
    assert [s.kind for s in feed(ep, SILENCE, 20, ALL)] == ["pause"]      # forgotten at 300 ms
    assert ep.speech_started_ms is None
    assert [s.kind for s in feed(ep, voice(), 1, ALL)] == ["resume"]
