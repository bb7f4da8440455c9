"""The decode pool: every recogniser decode in a process runs on its few threads.

Why a pool of its own rather than a thread per call: decoding is CPU-bound C code (CTranslate2
for Whisper, pocketsphinx, Vosk), and a 2-core machine decodes at most two things at once. A
thread per call would only make every caller wait longer together. So calls queue here:

* **bounded** — at most `threads` decodes run; at most `queue_limit` more wait. A submit beyond
  that raises `PoolBusy` at once, so the caller hears "please say that again" (or the keypad
  menu) now rather than silence later.
* **fair** — first come, first served across calls, and a call has at most one decode queued at a
  time (its stream feeds one job, `ivr.web.media`), so a chatty caller cannot starve the others.
* **time-limited** — each job carries a deadline. A job that would start after it, judging by how
  long recent jobs ran and how many wait, is refused at once (`PoolBusy`): its caller is asked
  again now instead of after a silence. One still waiting when it passes is not run (`PoolLate`).
* **withdrawn work frees its place at once** — a decode withdrawn while it waits (the caller went
  on talking, or the call's handler failed) stops counting against the queue the moment it is
  cancelled, not when a busy thread finally reaches it: dead calls never crowd out live ones.
* **speculative work only when idle** — a decode started at the first pause, which may be thrown
  away when the caller goes on, is admitted only while a thread is free (`idle_only=True`).

Counters (`stats()`) feed the metrics: jobs running and waiting, rejected, late, total wait.
"""
from __future__ import annotations

import contextvars
import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

log = logging.getLogger(__name__)

#: Jobs allowed to wait per thread: past that a new job would wait longer than a caller should.
QUEUE_PER_THREAD = 32


class PoolBusy(RuntimeError):
    """The pool is saturated (or, for speculative work, not idle): the job was not queued."""


class PoolLate(TimeoutError):
    """The job waited past its deadline and was not run."""


@dataclass(frozen=True)
class PoolStats:
    threads: int
    running: int
    waiting: int
    submitted: int
    rejected: int
    late: int
    wait_s_total: float


class DecodePool:
    """A fixed set of decoding threads with a bounded, deadline-aware FIFO queue."""

    def __init__(self, threads: int, queue_limit: int | None = None, name: str = "ivr-decode") -> None:
        if threads < 1:
            raise ValueError("a decode pool needs at least one thread")
        self.threads = threads
        self.queue_limit = queue_limit if queue_limit is not None else threads * QUEUE_PER_THREAD
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
        self._lock = threading.Lock()
        self._running = 0
        self._waiting = 0
        self._submitted = 0
        self._rejected = 0
        self._late = 0
        self._wait_total = 0.0
        self._run_s = 0.0          # recent job run time (moving average), for the deadline check
        self._observers: list[Callable[[str, float], None]] = []

    def observe(self, callback: Callable[[str, float], None]) -> None:
        """Call `callback(event, seconds)` on "wait" (a job started after waiting), "rejected", "late"."""
        self._observers.append(callback)

    def submit(self, fn: Callable[..., Any], *args: Any, deadline: float | None = None,
               idle_only: bool = False, must_run: bool = False) -> Future:
        """Queue `fn(*args)`; returns its future, which `cancel()` withdraws while it waits.

        The future raises `PoolLate` if the job had not started by `deadline` (a
        `time.monotonic()` value). Raises `PoolBusy` when the queue is full, or with `idle_only`
        when no thread is free right now. `must_run` jobs (giving an engine's decoders back)
        skip the limit: they are tiny, and refusing them would leak what they return.
        """
        with self._lock:
            if idle_only and self._running + self._waiting >= self.threads:
                raise PoolBusy("no decoding thread is idle")
            full = self._running + self._waiting >= self.threads + self.queue_limit
            if (full or self._would_be_late(deadline)) and not must_run:
                self._rejected += 1
                rejected = True
            else:
                rejected = False
                self._waiting += 1
                self._submitted += 1
        if rejected:
            self._notify("rejected", 0.0)
            raise PoolBusy(f"{self.queue_limit} decodes already waiting for {self.threads} threads")
        future: Future = Future()
        queued = [True]          # still counted in `_waiting`; whoever clears it first uncounts it
        future.add_done_callback(lambda done: done.cancelled() and self._unqueue(queued))
        # In the submitter's context: the job's log lines carry its call's CallSid (ivr.logs).
        self._executor.submit(contextvars.copy_context().run, self._run, future, fn, args, time.monotonic(),
                              deadline, queued)
        return future

    def _unqueue(self, queued: list[bool]) -> None:
        """A job withdrawn while waiting stops counting at once (unless it already started)."""
        with self._lock:
            if queued[0]:
                queued[0] = False
                self._waiting -= 1

    def _would_be_late(self, deadline: float | None) -> bool:
        """Whether a job queued now would start after `deadline`, judging by recent jobs (under
        the lock). Jobs ahead of it share the threads; the estimate errs towards admitting."""
        if deadline is None or not self._run_s:
            return False
        ahead = self._running + self._waiting - self.threads + 1
        return ahead > 0 and time.monotonic() + ahead * self._run_s / self.threads > deadline

    def _run(self, future: Future, fn: Callable[..., Any], args: tuple, queued_at: float,
             deadline: float | None, queued: list[bool]) -> None:
        started = time.monotonic()
        waited = started - queued_at
        wanted = future.set_running_or_notify_cancel()      # False: cancelled while waiting
        late = wanted and deadline is not None and started > deadline
        with self._lock:
            if queued[0]:
                queued[0] = False
                self._waiting -= 1
            if wanted:
                self._wait_total += waited
                self._late += late
                self._running += not late
        if not wanted:
            return
        self._notify("late" if late else "wait", waited)
        if late:
            future.set_exception(PoolLate(f"waited {waited:.2f} s, past its deadline"))
            return
        try:
            result = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits on the future
            future.set_exception(exc)
        else:
            future.set_result(result)
        finally:
            ran = time.monotonic() - started
            with self._lock:
                self._running -= 1
                self._run_s = ran if not self._run_s else 0.8 * self._run_s + 0.2 * ran

    def _notify(self, event: str, seconds: float) -> None:
        for callback in self._observers:
            try:
                callback(event, seconds)
            except Exception:  # noqa: BLE001 - metrics must never break decoding
                log.exception("decode pool observer failed")

    def stats(self) -> PoolStats:
        with self._lock:
            return PoolStats(self.threads, self._running, self._waiting, self._submitted,
                             self._rejected, self._late, round(self._wait_total, 3))

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


_pool: DecodePool | None = None
_pool_lock = threading.Lock()


def default_threads() -> int:
    """One decoding thread per core (IVR_DECODE_THREADS overrides): a decode uses a whole core."""
    return int(os.environ.get("IVR_DECODE_THREADS", "0") or 0) or (os.cpu_count() or 2)


def decode_pool() -> DecodePool:
    """The process-wide decode pool, shared by every call (created on first use)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = DecodePool(default_threads())
        return _pool
