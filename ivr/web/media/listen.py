"""Hearing one caller turn: the recogniser runs in the shared decode pool, never on the socket thread.

Two ways to listen, chosen by the engine:

* `StreamingListener` — engines with partial results (pocketsphinx, Vosk) decode as the audio
  arrives. Chunks queue here and one pool job at a time drains them, so the order is kept, a call
  never holds a pool thread while idle, and the running partial feeds the endpointer.
* `UtteranceListener` — engines without partials (Whisper), whose decode costs the same at any
  length. The utterance's audio is kept here; at the endpointer's first pause one decode of all of
  it runs in the pool (optionally sooner, if a decoding thread is idle: endpointing's `speculate_ms`). If the caller goes on, that decode is withdrawn (or its result ignored)
  and the next pause starts another; if not, it is the final transcript, already done or under
  way when the trailing silence ends the turn.

Either way `finish()` gives a `Heard`: the result, or why the caller's speech has no transcript
(pool saturated, too late, recogniser failed) so the call can ask again instead of going quiet.
`close()` always gives the engine its decoders back, whatever happened to the turn.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, Callable

from flask import current_app

from ivr import metrics
from ivr.rules_source import current_classifier
from ivr.speech.emergency import emergency_in_alternatives
from ivr.speech.engines.base import EngineBusy, EngineUnavailable, Grammar, Recognizer, Result
from ivr.speech.grammars import GrammarError, grammar_for_step
from ivr.speech.pool import DecodePool, PoolBusy, PoolLate

log = logging.getLogger(__name__)

#: Audio kept before the first voiced frame: the model needs the silence before a word.
PREROLL_MS = 300
BYTES_PER_MS = 16          # 8 kHz PCM16


@dataclass(frozen=True)
class Hypothesis:
    """What the recogniser has so far: a running partial, or a decode of the whole utterance."""
    text: str
    heard_to_ms: int       # audio time it covers
    whole: bool


@dataclass(frozen=True)
class Heard:
    """The end of a turn's recognition: a result, or why there is none although the caller spoke."""
    result: Result | None
    unheard: str | None = None      # "busy" | "late" | "failed"


class StreamingListener:
    """A recogniser with partials, fed chunk by chunk in the decode pool."""

    def __init__(self, recognizer: Recognizer, pool: DecodePool) -> None:
        self.recognizer = recognizer
        self.pool = pool
        self.rate = int(getattr(recognizer, "sample_rate", 8000))
        self._lock = threading.Lock()
        self._pending: deque[bytes] = deque()
        self._draining = False
        self._idle = threading.Event()
        self._idle.set()
        self._text = ""
        self._heard_ms = 0
        self._reported: tuple[str, int] = ("", -1)
        self._finished = False
        self.failed: BaseException | None = None

    def feed(self, pcm16: bytes) -> None:
        """Queue audio (PCM16 at the recogniser's rate); returns at once."""
        with self._lock:
            if self.failed is not None or self._finished:
                return
            self._pending.append(pcm16)
            if self._draining:
                return
            self._draining = True
            self._idle.clear()
        try:
            # must_run: a call's one drain job is how its audio reaches the decoder at all;
            # fairness comes from each call having at most one job queued.
            self.pool.submit(self._drain, must_run=True)
        except RuntimeError as exc:     # the pool was shut down (process exiting)
            with self._lock:
                self.failed, self._draining = exc, False
                self._idle.set()

    def pause(self, at_ms: int, from_ms: int | None, idle_only: bool = False) -> None:
        """Nothing to do: the partials already follow the audio."""

    def resume(self) -> None:
        """Nothing to do (see `pause`)."""

    def poll(self) -> Hypothesis | None:
        """The latest partial if it changed since the last poll."""
        with self._lock:
            now = (self._text, self._heard_ms)
        if now == self._reported:
            return None
        self._reported = now
        return Hypothesis(now[0], now[1], whole=False)

    @property
    def partial_text(self) -> str:
        with self._lock:
            return self._text

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._pending or self.failed is not None:
                    self._pending.clear()
                    self._draining = False
                    self._idle.set()
                    return
                chunk = self._pending.popleft()
            try:
                partial = self.recognizer.accept(chunk)
            except Exception as exc:  # an engine fault must end this call's decoding, not the pool
                log.exception("recogniser failed; the turn continues on keypad and silence only")
                with self._lock:
                    self.failed = exc
                continue
            with self._lock:
                if partial is not None:
                    self._text = partial.text
                self._heard_ms += len(chunk) * 1000 // (2 * self.rate)

    def finish(self, spoke: bool, timeout: float) -> Heard:
        """The final result after the queued audio, waiting at most `timeout` seconds.

        Late or failed, the last partial stands in when there is one (it is what the endpointer
        judged the turn on); without one the turn says why it has no transcript.
        """
        future = self._submit_finish()
        try:
            result = future.result(timeout)
            return Heard(result) if self.failed is None else Heard(None, "failed" if spoke else None)
        except FutureTimeout:
            log.warning("recogniser took longer than %.1f s to finish; using its last partial", timeout)
            reason = "late"
        except Exception:  # same reason as in _drain: the turn goes on with what we have
            log.exception("recogniser failed to finish; using its last partial")
            reason = "failed"
        text = self.partial_text
        if text:
            return Heard(Result(text, 0.0))
        return Heard(None, reason if spoke else None)

    def close(self) -> None:
        """Give the engine its decoders back if `finish` never ran (the handler failed)."""
        if not self._finished:
            with self._lock:
                self.failed = self.failed or RuntimeError("turn abandoned")
            self._submit_finish()

    def _submit_finish(self) -> Future:
        with self._lock:
            if self._finished:
                raise RuntimeError("listener already finished")
            self._finished = True
        # The finish runs after the queued audio even when nobody waits for it any more,
        # because engines lend decoders per recogniser and take them back only in `finish`.
        return self.pool.submit(self._finish_when_drained, must_run=True)

    def _finish_when_drained(self) -> Result:
        self._idle.wait()
        with metrics.decode_timer(self.recognizer):
            return self.recognizer.finish()


class UtteranceListener:
    """An engine without partials: one decode of the utterance per pause, in the decode pool."""

    def __init__(self, open_recognizer: Callable[[], Recognizer], pool: DecodePool,
                 deadline_s: float) -> None:
        self.open_recognizer = open_recognizer
        self.pool = pool
        self.deadline_s = deadline_s           # how long a decode may wait for a thread
        self._audio = bytearray()
        self._job: Future | None = None
        self._job_covers = 0
        self._reported: Future | None = None
        self.decodes = 0                        # started, for the turn's record (wasted ones too)
        self.unheard: str | None = None

    def feed(self, pcm16: bytes) -> None:
        self._audio += pcm16

    def pause(self, at_ms: int, from_ms: int | None, idle_only: bool = False) -> None:
        """The caller paused: decode everything said so far (up to `at_ms`).

        `idle_only`: the pause is young (endpointing's `speculate_ms`, off by default): decode only
        if a thread is idle now. Otherwise a decode already under way for this pause stands (a "resume" in between
        would have withdrawn it), and only a pause without one queues a decode.
        """
        if idle_only:
            self._withdraw()
            self._job = self._decode(at_ms, from_ms, idle_only=True)
        elif self._job is None:
            self._job = self._decode(at_ms, from_ms)
        else:
            return
        self._job_covers = at_ms

    def resume(self) -> None:
        """The caller went on: the decode in hand no longer covers the utterance."""
        self._withdraw()

    def poll(self) -> Hypothesis | None:
        """The pause's decode once it is done (once)."""
        job = self._job
        if job is None or job is self._reported or not job.done() or job.cancelled():
            return None
        self._reported = job
        try:
            result = job.result()
        except Exception:  # noqa: BLE001 - finish() reports it; here it just is no hypothesis
            return None
        return Hypothesis(result.text, self._job_covers, whole=True)

    def finish(self, spoke: bool, timeout: float, now_ms: int = 0, from_ms: int | None = None) -> Heard:
        """The utterance's transcript: the pause's decode if the caller did not go on after it,
        else a decode of everything now. Nothing is decoded when nobody spoke."""
        if not spoke:
            self._withdraw()
            return Heard(Result("", 0.0))
        job = self._job if self._job is not None and not self._job.cancelled() else None
        if job is None:
            job = self._decode(now_ms or len(self._audio) // BYTES_PER_MS, from_ms)
        if job is None:
            return Heard(None, self.unheard or "busy")
        try:
            return Heard(job.result(timeout))
        except FutureTimeout:
            job.cancel()
            log.warning("utterance decode not done within %.1f s", timeout)
            return Heard(None, "late")
        except PoolLate:
            return Heard(None, "late")
        except CancelledError:
            return Heard(None, "late")
        except Exception:
            log.exception("recogniser failed on the utterance")
            return Heard(None, "failed")

    def close(self) -> None:
        """Withdraw a decode nobody will read (the turn ended another way, or failed)."""
        if self._job is not None and not self._job.done():
            self._job.cancel()

    def _withdraw(self) -> None:
        if self._job is not None:
            self._job.cancel()          # a running decode finishes; its result is ignored
            self._job = None

    def _decode(self, to_ms: int, from_ms: int | None, idle_only: bool = False) -> Future | None:
        start = max(0, (from_ms or 0) - PREROLL_MS) * BYTES_PER_MS
        audio = bytes(self._audio[start:to_ms * BYTES_PER_MS])
        try:
            job = self.pool.submit(self._run, audio, deadline=time.monotonic() + self.deadline_s,
                                   idle_only=idle_only)
        except PoolBusy as exc:
            if idle_only:
                return None         # no thread idle: the pause's own decode comes at `pause_ms`
            log.warning("no decode for this utterance: %s", exc)
            self.unheard = "busy"
            return None
        self.decodes += 1
        return job

    def _run(self, audio: bytes) -> Result:
        recognizer = self.open_recognizer()
        with metrics.decode_timer(recognizer):
            recognizer.accept(audio)
            return recognizer.finish()


def make_listener(engine: Any, open_recognizer: Callable[[], Recognizer], pool: DecodePool,
                  deadline_s: float) -> StreamingListener | UtteranceListener:
    """The listener that suits `engine` (its `partials` attribute; engines have them by default)."""
    if getattr(engine, "partials", True):
        return StreamingListener(open_recognizer(), pool)
    return UtteranceListener(open_recognizer, pool, deadline_s)


def step_grammar(step: str, language: str) -> Grammar | None:
    """The grammar for a listening step (yes/no at `confirm` …), None for free speech.

    A broken grammar file must not cost the caller their turn: it is logged and the step
    listens with the free domain model instead.
    """
    try:
        return grammar_for_step(current_app.config.get("IVR_GRAMMARS_DIR") or "grammars", language, step)
    except GrammarError as exc:
        log.error("grammar for step %r unusable, listening freely: %s", step, exc)
        return None


def open_recognizer(engine: Any, sample_rate: int, grammar: Grammar | None) -> Recognizer:
    """`engine.recognizer` with `grammar`, or free speech when the engine cannot use the grammar."""
    if grammar is not None:
        try:
            return engine.recognizer(sample_rate, grammar)
        except EngineBusy:
            raise                          # no decoder free: asking again would only wait twice
        except EngineUnavailable as exc:   # e.g. no phrase the model can say: free speech still works
            log.error("grammar %s unusable with %s, listening freely: %s", grammar.name, engine.name, exc)
    return engine.recognizer(sample_rate)


def watched_emergency(result: Result | None, language: str, transcript: str) -> str | None:
    """The emergency watch's verdict for this turn (see ivr.speech.emergency), or None."""
    classifier = current_classifier()
    if transcript and classifier.classify(transcript, language).emergency:
        return None     # the transcript says it already; /voice/turn's classification will tell
    return emergency_in_alternatives(classifier, result, language)
