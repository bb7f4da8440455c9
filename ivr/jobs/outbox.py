"""Outbox delivery in `ivr worker`: woken after each commit that queued messages, swept every minute.

- `deliver_task()`: drain every due row (ivr.outbox.worker.drain). Enqueued by ivr.outbox right
  after a commit that queued rows (or scheduled for when a delayed row becomes due), and by a
  drain that left rows to retry, for the moment the first of them is due.
- `sweep`: the same every minute, so rows are delivered even when a wake-up was lost (the app
  died between its commit and the wake-up, the queue was unreachable) or a claim's lease ran out.
- Rows due within the next minute (a retry's backoff, alert texts spread one a second with
  `not_before`) get a *chained* wake-up: the drain that finds them schedules one task for the
  earliest. A key in huey's storage (`CHAIN_KEY`, holding that time) keeps it to one chain
  however many workers drain: a drain schedules only when no chain is due sooner; the chain's
  task takes the key when it runs. A stale key (its time long past: a lost task) is replaced.

Why huey: the embedded set-up needs no server (the queue is a SQLite file beside the database),
and the same code runs on Redis when the city adds machines (IVR_REDIS_URL); tasks, schedules,
periodic jobs and locks are the library's, tested by others. The outbox *table* stays the source
of truth: huey only says "look now". Losing a huey message therefore delays a text by at most a
minute; it never loses one — and two huey tasks running at once cannot send a row twice, because
rows are claimed in the database.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from flask import current_app
from huey import crontab
from sqlalchemy.orm import Session

from ivr import outbox
from ivr.jobs.queue import app_periodic_task, app_task, huey
from ivr.outbox.worker import DrainReport, drain
from ivr.store import db
from ivr.store import outbox as store
from ivr.store.models import utcnow

log = logging.getLogger(__name__)

CHAIN_KEY = "ivr.outbox.next-wake"
#: Rows due later than this are left to the sweep (every minute).
CHAIN_HORIZON = timedelta(seconds=60)


def _drain_now() -> dict[str, int]:
    app = current_app._get_current_object()   # type: ignore[attr-defined]
    report: DrainReport = drain(app)
    with Session(db.engine(app)) as s:
        due = store.next_due(s)
    if due is not None and utcnow() < due <= utcnow() + CHAIN_HORIZON:
        _chain(due)
    return report.counts


def _chain(due: datetime) -> None:
    """Schedule one wake-up at `due` unless the chain already wakes up no later."""
    stamp = due.timestamp()
    if not huey.put_if_empty(CHAIN_KEY, stamp):
        current = huey.get(CHAIN_KEY, peek=True)
        if current is not None and time.time() - 60 < current <= stamp:
            return
        huey.put(CHAIN_KEY, stamp)
    chained_task.schedule(eta=due)


@app_task()
def deliver_task() -> dict[str, int]:
    """Deliver every due outbox row now (its result: how many were sent / to retry / dead)."""
    return _drain_now()


@app_task()
def chained_task() -> dict[str, int]:
    """The chain's wake-up (see the module docstring): takes the key, drains, maybe chains again."""
    huey.get(CHAIN_KEY)
    return _drain_now()


@app_periodic_task(crontab(minute="*"))
def sweep() -> None:
    """Every minute: deliver what is due, whatever happened to its wake-up."""
    counts = _drain_now()
    if any(counts.values()):
        log.info("outbox sweep: %s", ", ".join(f"{k} {v}" for k, v in counts.items() if v))


def wake(due: datetime | None) -> None:
    """Ask a worker to drain now, or at `due` (huey keeps scheduled tasks in its own storage)."""
    if due is None or due <= utcnow():
        deliver_task()
    else:
        deliver_task.schedule(eta=due)


outbox.on_commit(wake)

__all__ = ["deliver_task", "chained_task", "sweep", "wake", "huey"]
