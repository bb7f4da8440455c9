"""Outbox delivery in `ivr worker`: woken after each commit that queued messages, swept every minute.

- `deliver_task()`: drain every due row (ivr.outbox.worker.drain). Enqueued by ivr.outbox right
  after a commit that queued rows (or scheduled for when a delayed row becomes due), and by a
  drain that left rows to retry, for the moment the first of them is due.
- `sweep`: the same every minute, so rows are delivered even when a wake-up was lost (the app
  died between its commit and the wake-up, the queue was unreachable) or a claim's lease ran out.

Why huey: the embedded set-up needs no server (the queue is a SQLite file beside the database),
and the same code runs on Redis when the city adds machines (IVR_REDIS_URL); tasks, schedules,
periodic jobs and locks are the library's, tested by others. The outbox *table* stays the source
of truth: huey only says "look now". Losing a huey message therefore delays a text by at most a
minute; it never loses one — and two huey tasks running at once cannot send a row twice, because
rows are claimed in the database.
"""
from __future__ import annotations

import logging
from datetime import datetime

from flask import current_app
from huey import crontab

from ivr import outbox
from ivr.jobs.queue import app_periodic_task, app_task, huey
from ivr.outbox.worker import DrainReport, drain
from ivr.store.models import utcnow

log = logging.getLogger(__name__)


def _drain_now() -> dict[str, int]:
    report: DrainReport = drain(current_app._get_current_object())   # type: ignore[attr-defined]
    if report.next_retry_at is not None:
        wake(report.next_retry_at)
    return report.counts


@app_task()
def deliver_task() -> dict[str, int]:
    """Deliver every due outbox row now (its result: how many were sent / to retry / dead)."""
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

__all__ = ["deliver_task", "sweep", "wake", "huey"]
