"""Hearing a turn with an engine without partials (Whisper): when the utterance is decoded, in the
shared decode pool, and what a superseded decode costs. A recogniser that returns how much audio it
was given stands in for the model; the pool is the real one. Jobs block on events the test
controls, so nothing depends on how fast the machine is."""
from __future__ import annotations

import threading

import pytest

from ivr.speech.engines.base import Result
from ivr.speech.pool import DecodePool
from ivr.web.media.listen import BYTES_PER_MS, UtteranceListener


class Counting:
    """A recogniser whose transcript says how many ms of audio it decoded."""
    name = "counting"

    def __init__(self) -> None:
        self.audio = b""

    def accept(self, pcm16: bytes) -> None:
        self.audio += pcm16

    def finish(self) -> Result:
        return Result(f"{len(self.audio) // BYTES_PER_MS} ms", 0.9)


@pytest.fixture
def pool():
    pool = DecodePool(threads=1, queue_limit=4)
    yield pool
    pool.shutdown()


def listener(pool: DecodePool, ms: int = 1000) -> UtteranceListener:
    heard = UtteranceListener(Counting, pool, deadline_s=30)
    heard.feed(bytes(ms * BYTES_PER_MS))
    return heard


def busy(pool: DecodePool) -> threading.Event:
    release, started = threading.Event(), threading.Event()
    pool.submit(lambda: (started.set(), release.wait()))
    assert started.wait(10)
    return release


def test_an_idle_pool_decodes_at_the_young_pause_and_that_decode_is_the_transcript(pool):
    heard = listener(pool)
    heard.pause(700, 0, idle_only=True)
    heard.pause(750, 0)                          # the firm pause keeps the decode under way
    result = heard.finish(True, 10, now_ms=1000, from_ms=0)
    assert result.result.text == "700 ms" and heard.decodes == 1


def test_a_busy_pool_skips_the_young_pause_and_queues_at_the_firm_one(pool):
    release = busy(pool)
    heard = listener(pool)
    heard.pause(700, 0, idle_only=True)          # no thread idle: nothing started, nothing lost
    assert heard.decodes == 0 and heard.unheard is None
    heard.pause(750, 0)
    assert heard.decodes == 1
    release.set()
    assert heard.finish(True, 10, now_ms=1000, from_ms=0).result.text == "750 ms"


def test_a_caller_who_goes_on_withdraws_the_queued_decode_and_frees_its_place(pool):
    release = busy(pool)
    heard = listener(pool)
    heard.pause(500, 0)
    assert pool.stats().waiting == 1
    heard.resume()
    assert pool.stats().waiting == 0             # withdrawn: no longer ahead of anyone
    heard.feed(bytes(500 * BYTES_PER_MS))
    heard.pause(1400, 0)
    release.set()
    assert heard.finish(True, 10, now_ms=1500, from_ms=0).result.text == "1400 ms"
    assert heard.decodes == 2


def test_nobody_spoke_nothing_is_decoded(pool):
    heard = listener(pool)
    assert heard.finish(False, 10).result.text == "" and heard.decodes == 0
