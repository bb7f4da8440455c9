"""Admission: at most IVR_ACTIVE_WEBHOOKS Twilio webhooks of a worker process run at once; the
others wait, blocked, until one finishes (0, the default: no limit).

Why: with 32 gunicorn threads, every webhook runs until its first write (parsing, classifying,
rendering) while one of them holds SQLite's write turn (ivr/store/sqlite.py). Each time the turn
holder gives up the GIL (every SQL statement) it has to win it back against every runnable
thread, so the turn — and every writer of both workers queued behind it — lasts several times
its own CPU. Threads waiting here are blocked, not runnable: the holder competes with a few.
Measured on a shared machine (load 5-9), bench/calls.py paced p99 fell in five of five paired
runs with 4 places. On the quiet machine (load 0.5-1.8, 100 calls, 2 workers x 32 threads, one run
each) it did not hold: paced p99 12.1-17.0 ms with 4 or 8 FIFO places against 13.4-15.6 ms without,
closed p99 299-499 ms against 262-397 ms. Hence off by default: a tool for a loaded host, not a win.

Places go to waiting webhooks in the order they came (`ivr.fifo.FifoSemaphore`): with a plain
Condition any waiter could win, and under saturation some waited far longer than others
(closed p99 779 ms with 8 such places).

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
