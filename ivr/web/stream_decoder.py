"""Decoding a caller's audio off the websocket thread, in the shared decode pool."""
from __future__ import annotations

import logging
import threading
from collections import deque
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from ivr.telephony.stream import SAMPLE_RATE

log = logging.getLogger(__name__)


class StreamDecoder:
    """Feeds a recogniser from the websocket thread without blocking it.

    Chunks queue here and one task at a time drains them in the shared decode pool, so the order
    is kept, a call never holds a pool thread while idle, and many calls share few threads.
    """

    def __init__(self, recognizer: Any, pool: Any = None) -> None:
        from ivr.speech.engines.base import decode_pool

        self.recognizer = recognizer
        self.pool = pool or decode_pool()
        self.rate = int(getattr(recognizer, "sample_rate", SAMPLE_RATE))
        self._lock = threading.Lock()
        self._pending: deque[bytes] = deque()
        self._draining = False
        self._idle = threading.Event()
        self._idle.set()
        self._text = ""
        self._heard_ms = 0
        self.failed: BaseException | None = None

    def feed(self, pcm16: bytes) -> None:
        """Queue audio (PCM16 at the recogniser's rate); returns at once."""
        with self._lock:
            if self.failed is not None:
                return
            self._pending.append(pcm16)
            if not self._draining:
                self._draining = True
                self._idle.clear()
                self.pool.submit(self._drain)

    def snapshot(self) -> tuple[str, int]:
        """(latest partial text, milliseconds of audio decoded so far)."""
        with self._lock:
            return self._text, self._heard_ms

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._pending or self.failed is not None:
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

    def finish(self, timeout: float) -> Any:
        """The recogniser's final `Result`, or None if it failed or took longer than `timeout`.

        The finish runs in the pool after the queued audio, even when we stop waiting for it,
        because engines lend a decoder per recogniser and take it back only in `finish`.
        """
        future = self.pool.submit(self._finish_when_drained)
        try:
            return future.result(timeout)
        except FutureTimeout:
            log.warning("recogniser took longer than %.1f s to finish; using its last partial", timeout)
        except Exception:  # same reason as in _drain: the turn goes on with what we have
            log.exception("recogniser failed to finish; using its last partial")
        return None

    def _finish_when_drained(self) -> Any:
        self._idle.wait()
        result = self.recognizer.finish()
        return None if self.failed is not None else result
