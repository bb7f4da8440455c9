"""Admission: at most IVR_ACTIVE_WEBHOOKS Twilio webhooks of a worker process run at once; the
others wait, blocked, until one finishes (0, the default: no limit).

Why: with 32 gunicorn threads, every webhook runs until its first write (parsing, classifying,
rendering) while one of them holds SQLite's write turn (ivr/store/sqlite.py). Each time the turn
holder gives up the GIL (every SQL statement) it has to win it back against every runnable
thread, so the turn — and every writer of both workers queued behind it — lasts several times
its own CPU. Threads waiting here are blocked, not runnable: the holder competes with a few.
Measured for direction on a shared machine (load 5-9, 100 calls, 2 workers x 32 threads):
bench/calls.py paced p99 fell in three of three paired runs with 4 (31/18/54 ms against
76/24/60 ms); closed mode served 5-30 % more webhooks per second, its p99 mixed. Hence off
until measured on a quiet machine.

Places go to waiting webhooks in the order they came (`ivr.fifo.FifoSemaphore`): with a plain
Condition any waiter could win, and under saturation (bench/calls.py --mode closed) some waited
far longer than others: p99 779 ms with 8 places against 397 ms without a gate.

A waiting webhook is never refused: after WAIT_S it goes ahead anyway (a stuck request must not
stop the line). Media-stream websockets (a whole turn of audio) and non-webhook pages are not
counted.
"""
from __future__ import annotations

import logging

from flask import Flask, current_app, g, request

from ivr import metrics
from ivr.fifo import FifoSemaphore

log = logging.getLogger(__name__)
WAIT_S = 10.0
EXTENSION = "ivr.admission"


#: Webhooks that can take seconds do not hold a place: /voice/recorded downloads the caller's
#: recording and recognises it (record capture mode); holding one of N places for that would
#: stall the worker's other calls.
SLOW_PATHS = frozenset({"/voice/recorded"})


def _is_webhook() -> bool:
    return request.path.startswith(metrics.WEBHOOK_PREFIXES) and request.path not in SLOW_PATHS and \
        request.headers.get("Upgrade", "").lower() != "websocket"


def _admit() -> None:
    gate = _gate()
    if gate is None or not _is_webhook():
        return
    if gate.acquire(WAIT_S):
        g.ivr_admitted = gate
    else:
        log.warning("a webhook waited %.0f s for one of %d places; going ahead", WAIT_S, gate.places)


def _leave(_exc: BaseException | None) -> None:
    gate = g.pop("ivr_admitted", None)
    if gate is not None:
        gate.release()


def _gate() -> FifoSemaphore | None:
    return current_app.extensions.get(EXTENSION)


def init_app(app: Flask) -> None:
    """Gate webhooks when IVR_ACTIVE_WEBHOOKS > 0. Registered first, so a waiting webhook has done
    no work yet (not even parsing its form), and released at teardown, whatever happened."""
    limit = int(app.config.get("IVR_ACTIVE_WEBHOOKS") or 0)
    if limit <= 0:
        return
    app.extensions[EXTENSION] = FifoSemaphore(limit)
    app.before_request(_admit)
    app.teardown_request(_leave)
