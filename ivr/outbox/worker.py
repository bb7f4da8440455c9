"""Draining the outbox: claim due rows, deliver each, record the outcome; retry with backoff.

`drain(app)` is what the huey tasks in ivr.jobs.outbox run: after each commit that queued
something (woken), on a schedule for retries, and every minute as a sweep that finds whatever
a lost wake-up left behind. Any number of drains may run at once, in threads of one worker or
on several machines: each claims its own rows (ivr.store.outbox.claim), so none is sent twice
while its lease lasts.

Settings (app config, IVR_* from the environment):
  IVR_OUTBOX_MAX_ATTEMPTS  (10)    attempts before a row is dead
  IVR_OUTBOX_RETRY_BASE_S  (30)    first retry after ~this; doubles each attempt (equal jitter)
  IVR_OUTBOX_RETRY_MAX_S   (3600)  longest wait between attempts
  IVR_OUTBOX_LEASE_S       (300)   how long a claim lasts before another worker may take the row
  IVR_OUTBOX_BATCH         (50)    rows claimed at once
"""
from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Mapping

from flask import Flask
from sqlalchemy.orm import sessionmaker

from ivr import metrics
from ivr.outbox.delivery import Deliverer, Outcome
from ivr.store import db
from ivr.store import outbox as store
from ivr.store.models import utcnow
from ivr.store.privacy import mask_number
from ivr.store.sms_contacts import opted_out

log = logging.getLogger(__name__)

DEFAULTS = {"IVR_OUTBOX_MAX_ATTEMPTS": 10, "IVR_OUTBOX_RETRY_BASE_S": 30.0, "IVR_OUTBOX_RETRY_MAX_S": 3600.0,
            "IVR_OUTBOX_LEASE_S": 300.0, "IVR_OUTBOX_BATCH": 50}


def setting(config: Mapping[str, Any], name: str) -> float:
    raw = config.get(name)
    default = DEFAULTS[name]
    try:
        return type(default)(raw) if raw not in (None, "") else default
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {raw!r}") from None


def backoff_s(attempts: int, base_s: float, max_s: float, rng: random.Random | None = None) -> float:
    """Seconds before attempt `attempts + 1`: base·2^(attempts−1), capped, with equal jitter.

    Jitter spreads the retries of many rows that failed together (Twilio down for a minute), so
    they do not all come back in the same second; half the delay is kept so it still grows.
    """
    delay = min(max_s, base_s * (2 ** max(0, attempts - 1)))
    return delay / 2 + (rng or random).uniform(0, delay / 2)


def worker_id() -> str:
    """Who holds a claim: host, process and thread (a thread of `ivr worker` is one drainer)."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


@dataclass
class DrainReport:
    counts: dict[str, int] = field(default_factory=lambda: {"sent": 0, "retry": 0, "dead": 0, "lost": 0})
    next_retry_at: datetime | None = None   # earliest retry this drain scheduled

    def add(self, result: str, retry_at: datetime | None = None) -> None:
        self.counts[result] = self.counts.get(result, 0) + 1
        if retry_at and (self.next_retry_at is None or retry_at < self.next_retry_at):
            self.next_retry_at = retry_at


def drain(app: Flask, *, max_rows: int | None = None, deliverer: Deliverer | None = None,
          worker: str | None = None) -> DrainReport:
    """Deliver due rows until none is left (or `max_rows` were handled)."""
    config = app.config
    batch = int(setting(config, "IVR_OUTBOX_BATCH"))
    lease_s = setting(config, "IVR_OUTBOX_LEASE_S")
    worker = worker or worker_id()
    own_deliverer = deliverer is None
    deliverer = deliverer or Deliverer(config)
    report = DrainReport()
    sessions = sessionmaker(db.engine(app), expire_on_commit=False)
    try:
        while max_rows is None or sum(report.counts.values()) < max_rows:
            limit = batch if max_rows is None else min(batch, max_rows - sum(report.counts.values()))
            with sessions() as s:
                rows = store.claim(s, worker, limit=limit, lease_s=lease_s)
                s.commit()     # the claim must be visible to other workers before anything is sent
            if not rows:
                break
            for row in rows:
                _deliver_one(app, sessions, deliverer, row, worker, report)
    finally:
        if own_deliverer:
            deliverer.close()
    return report


def _deliver_one(app: Flask, sessions: Any, deliverer: Deliverer, row: store.Row, worker: str,
                 report: DrainReport) -> None:
    config = app.config
    outcome: Outcome | None = None
    if row.kind == "sms":
        with sessions() as s:
            if opted_out(s, row.target):
                outcome = Outcome.dead("not sent: the number opted out (STOP)")
    if outcome is None:
        started = time.perf_counter()
        try:
            outcome = deliverer.deliver(row)
        except Exception as exc:  # noqa: BLE001 - an adapter bug must not kill the drain; retried, logged
            log.exception("outbox: %s #%d: adapter failed", row.kind, row.id)
            outcome = Outcome.retry(f"internal error: {type(exc).__name__}: {exc}")
        metrics.OUTBOX_SEND_SECONDS.labels(kind=row.kind).observe(time.perf_counter() - started)
    max_attempts = int(setting(config, "IVR_OUTBOX_MAX_ATTEMPTS"))
    if outcome.result == "retry" and row.attempts >= max_attempts:
        outcome = Outcome.dead(f"gave up after {row.attempts} attempts; last: {outcome.error}")
    retry_at = None
    now = utcnow()
    with sessions() as s:
        if outcome.result == "sent":
            held = store.mark_sent(s, row.id, worker, outcome.provider_id, now=now)
        elif outcome.result == "dead":
            held = store.mark_dead(s, row.id, worker, outcome.error, now=now)
        else:
            retry_at = now + timedelta(seconds=backoff_s(row.attempts, setting(config, "IVR_OUTBOX_RETRY_BASE_S"),
                                                         setting(config, "IVR_OUTBOX_RETRY_MAX_S")))
            held = store.mark_failed(s, row.id, worker, outcome.error, retry_at, now=now)
        s.commit()
    who = mask_number(row.target) if row.kind == "sms" else row.target
    if not held:
        # The lease ran out while sending and another worker took the row: it will send again
        # (at least once). Leases far longer than send timeouts make this a crash-only path.
        log.warning("outbox: %s #%d to %s finished (%s) after its claim expired; another worker owns it",
                    row.kind, row.id, who, outcome.result)
        report.add("lost")
        return
    metrics.OUTBOX_DELIVERIES.labels(kind=row.kind, result={"retry": "failed"}.get(outcome.result, outcome.result)).inc()
    if outcome.result == "sent":
        log.info("outbox: %s #%d sent to %s (%s)", row.kind, row.id, who, outcome.provider_id or "-")
    elif outcome.result == "dead":
        log.error("outbox: %s #%d to %s is dead after %d attempt(s): %s", row.kind, row.id, who, row.attempts,
                  outcome.error)
    else:
        log.warning("outbox: %s #%d to %s failed (attempt %d), retry at %s: %s", row.kind, row.id, who,
                    row.attempts, retry_at.isoformat() if retry_at else "?", outcome.error)
    report.add(outcome.result, retry_at)
