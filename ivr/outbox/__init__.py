"""The durable outbox: what the city sends (texts, department e-mails, webhooks, Open311 posts).

Public surface:
- `enqueue(s, kind=…, key=…, target=…, payload=…)`: one row in the caller's transaction;
- `send_sms(s, to=…, body=…, key=…, purpose=…)`: a text to a citizen (kind "sms");
- `notify_department(s, request, rules)`: one row per target of the department's `notify`;
- `on_commit(callback)`: how the worker is woken (ivr.jobs.outbox registers itself).

Nothing is sent here. A row becomes visible to workers when the caller's transaction commits;
only *then* is the worker woken (a SQLAlchemy `after_commit` hook), so a rolled-back webhook
sends nothing and no worker looks for a row that is not there yet. A lost wake-up (the app died
between commit and wake-up, the queue was down) costs only time: `ivr worker`'s periodic sweep
delivers every due row. Delivery itself is in ivr.outbox.delivery (adapters) and
ivr.outbox.worker (claim, send, mark), run by the huey tasks in ivr.jobs.outbox.
"""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Callable

from sqlalchemy import event
from sqlalchemy.orm import Session

from ivr import metrics
from ivr.outbox.notify import department_messages
from ivr.store import outbox as store
from ivr.store.models import utcnow
from ivr.store.privacy import mask_number

__all__ = ["enqueue", "send_sms", "notify_department", "on_commit", "observe_queue"]

log = logging.getLogger(__name__)

#: s.info key: the earliest moment a row enqueued in this transaction becomes due (None: now).
_WAKE = "ivr.outbox.wake"
#: Called after a commit that enqueued rows, with the time the first of them is due.
_wakers: list[Callable[[datetime | None], None]] = []


def on_commit(callback: Callable[[datetime | None], None]) -> None:
    """Call `callback(due_at)` after each commit that enqueued rows (due_at None: due now)."""
    if callback not in _wakers:
        _wakers.append(callback)


def enqueue(s: Session, *, kind: str, key: str, target: str, payload: dict[str, Any],
            not_before: datetime | None = None) -> bool:
    """Add one message to send, in `s`'s transaction (no commit); False if `key` already existed.

    `key` makes it idempotent: a retried webhook that enqueues the same key adds nothing.
    """
    created = store.insert(s, key=key, kind=kind, target=target, payload=payload, not_before=not_before)
    if created:
        due = not_before if not_before and not_before > utcnow() else None
        if _WAKE in s.info:
            earlier = s.info[_WAKE]
            s.info[_WAKE] = None if due is None or earlier is None else min(due, earlier)
        else:
            s.info[_WAKE] = due
    return created


def send_sms(s: Session, *, to: str, body: str, key: str, purpose: str,
             not_before: datetime | None = None) -> bool:
    """A text to `to` (E.164). `purpose` ("case-number", "alert", "reply" …) is kept for the logs.

    A number that has opted out (STOP) is checked when the text is *sent*, not here: a STOP that
    arrives while the text waits in the outbox still stops it.
    """
    if not to or not body:
        raise ValueError("send_sms needs a number and a body")
    created = enqueue(s, kind="sms", key=key, target=to, payload={"body": body, "purpose": purpose},
                      not_before=not_before)
    if created:
        log.info("outbox: text %s queued for %s", purpose, mask_number(to))
    return created


def notify_department(s: Session, request: Any, rules: Any) -> int:
    """Queue the department's notifications of a new service request; the number of rows added.

    One row per target in `rules.departments[<department>].notify`; none when it declares none.
    Keys are derived from the case number, so creating the same request again adds nothing.
    """
    count = 0
    for message in department_messages(request, rules):
        count += enqueue(s, kind=message.kind, key=message.key, target=message.target, payload=message.payload)
    return count


def observe_queue(s: Session) -> None:
    """Set the outbox gauges (rows by kind and status, oldest waiting) from the table: /metrics
    calls this when scraped, so every host reports the one shared outbox."""
    found = store.stats(s)
    for kind in store.KINDS:
        for status in store.STATUSES:
            metrics.OUTBOX_MESSAGES.labels(kind=kind, status=status).set(found.counts.get((kind, status), 0))
    oldest = (utcnow() - found.oldest_waiting).total_seconds() if found.oldest_waiting else 0.0
    metrics.OUTBOX_OLDEST_WAITING_SECONDS.set(max(0.0, oldest))


# --- waking the worker after the commit ------------------------------------------------------------
def _after_commit(s: Session) -> None:
    if _WAKE not in s.info:
        return
    due = s.info.pop(_WAKE)
    for wake in _wakers:
        try:
            wake(due)
        except Exception as exc:  # noqa: BLE001 - the rows are committed; the sweep delivers them
            log.warning("outbox: could not wake the worker (%s); the periodic sweep will deliver", exc)


def _after_rollback(s: Session, *_args: Any) -> None:
    s.info.pop(_WAKE, None)   # nothing was committed: nothing to deliver


# Every Session: the webhook's, the CLI's, a test's. The check is one dict lookup.
event.listen(Session, "after_commit", _after_commit)
event.listen(Session, "after_soft_rollback", _after_rollback)
