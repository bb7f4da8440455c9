"""Retention: forget what the city need not keep, on a schedule, safely from several instances.

Defaults (days; IVR_RETAIN_<KIND>_DAYS overrides, 0 keeps that kind forever):

========================  =====  =============================================================
kind                      days   what goes
========================  =====  =============================================================
transcripts               90     what callers said (see ivr.store.retention)
recordings                90     the audio at Twilio (DELETE, with the same host rules as
                                 downloads), then our references and voicemail URLs
numbers                   30     callers' numbers → salted hash (IVR_NUMBER_HASH_SALT, else a
                                 salt the database makes once and every instance shares)
replies                   2      stored webhook answers (Twilio retries come within minutes)
prompt_renders            7      rendered audio of per-call prompts (queue position, whisper …);
                                 the fixed prompts `ivr prompts build` renders are kept
========================  =====  =============================================================

`prune_task` runs every hour at minute 17 in `ivr worker`. Two workers (or two machines on one
PostgreSQL) never prune at the same time: huey's lock on the shared queue, and on PostgreSQL an
advisory lock in the database; every step is idempotent besides, so a race would only repeat
work that finds nothing left to do. A call in progress is never touched.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from flask import Flask, current_app
from huey import crontab
from huey.exceptions import TaskLockedException
from sqlalchemy.orm import Session

from ivr.jobs.queue import app_periodic_task, app_task, huey
from ivr.prompts.fixed import fixed_texts
from ivr.prompts.serving import catalogue_now, prompt_audio
from ivr.routing.hours import hours_by_code
from ivr.rules_source import current_rules
from ivr.store import db
from ivr.store import retention as store_retention
from ivr.store.models import utcnow
from ivr.web.voice.recording import delete_recording

log = logging.getLogger(__name__)

DEFAULT_DAYS: dict[str, float] = {"transcripts": 90, "recordings": 90, "numbers": 30, "replies": 2,
                                  "prompt_renders": 7}
KINDS = (*store_retention.KINDS, "prompt_renders")
LOCK_NAME = "retention"


def policy_days(config: Mapping[str, Any]) -> dict[str, float]:
    """Days to keep each kind, from IVR_RETAIN_<KIND>_DAYS (ValueError names a bad setting)."""
    days: dict[str, float] = {}
    for kind, default in DEFAULT_DAYS.items():
        name = f"IVR_RETAIN_{kind.upper()}_DAYS"
        raw = config.get(name)
        try:
            days[kind] = default if raw in (None, "") else float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a number of days (0 keeps forever), got {raw!r}") from None
        if days[kind] < 0:
            raise ValueError(f"{name} must be 0 (keep forever) or more, got {raw!r}")
    return days


@dataclass
class Report:
    """What one run found (dry run) or removed, per kind; `skipped` when another run held the lock."""
    counts: dict[str, int]
    dry_run: bool
    skipped: bool = False

    def lines(self) -> list[str]:
        if self.skipped:
            return ["retention is running elsewhere right now; nothing done"]
        verb = "would go" if self.dry_run else "removed"
        return [f"{kind:15} {self.counts.get(kind, 0):7}  {verb}" for kind in KINDS]


def run(app: Flask, *, dry_run: bool = False) -> Report:
    """Count (dry run) or apply retention to `app`'s database and prompt cache now."""
    days = policy_days(app.config)
    now = utcnow()
    cutoffs = store_retention.Cutoffs.from_days(now, **{k: days[k] for k in store_retention.KINDS})
    engine = db.engine(app)
    with engine.connect() as conn:
        if not dry_run and not store_retention.try_lock(conn):
            return Report({}, dry_run, skipped=True)
        try:
            with Session(bind=conn, expire_on_commit=False) as s:
                if dry_run:
                    counts = store_retention.count(s, cutoffs)
                else:
                    salt = app.config.get("IVR_NUMBER_HASH_SALT") or store_retention.number_salt(s)
                    with app.app_context():
                        counts = store_retention.prune(s, cutoffs, salt, delete_recording)
        finally:
            if not dry_run:
                store_retention.unlock(conn)
    counts["prompt_renders"] = _prune_renders(app, days["prompt_renders"], dry_run)
    return Report(counts, dry_run)


def _prune_renders(app: Flask, days: float, dry_run: bool) -> int:
    """Per-call prompt renders older than `days`: cache files that are not fixed prompts."""
    if days <= 0:
        return 0
    cache = Path(app.config["IVR_PROMPT_CACHE_DIR"])
    if not cache.is_dir():
        return 0
    keep = _fixed_names(app)
    if keep is None:
        log.warning("retention: fixed prompts unknown (rules or catalogue not loaded); prompt renders kept")
        return 0
    cutoff = time.time() - days * 86400
    gone = 0
    for path in cache.glob("*.wav"):
        try:
            if path.stem in keep or path.stat().st_mtime >= cutoff:
                continue
            if not dry_run:
                path.unlink()
            gone += 1
        except FileNotFoundError:   # another worker removed it first
            continue
    return gone


def _fixed_names(app: Flask) -> set[str] | None:
    """Cache names of every prompt knowable ahead (what `ivr prompts build` renders)."""
    try:
        with app.app_context():
            catalogue = catalogue_now()
            store = prompt_audio()
            rules = current_rules()
            return {store.name(item.text, item.voice) for language in catalogue
                    for item in fixed_texts(catalogue[language], language, rules, hours_by_code(rules))}
    except Exception as exc:  # noqa: BLE001 - without the fixed set nothing is deleted
        log.warning("retention: cannot list fixed prompts: %s", exc)
        return None


def prune_once() -> dict[str, int]:
    """One retention run in the current app, unless another worker is running one."""
    try:
        with huey.lock_task(LOCK_NAME):
            report = run(current_app._get_current_object())  # type: ignore[attr-defined]
    except TaskLockedException:
        log.info("retention: another worker is pruning; skipped")
        return {}
    if report.skipped:
        log.info("retention: another instance holds the database lock; skipped")
    elif any(report.counts.values()):
        log.info("retention: removed %s", ", ".join(f"{k} {v}" for k, v in report.counts.items() if v))
    return report.counts


@app_periodic_task(crontab(minute="17"))
def prune_hourly() -> None:
    """Retention every hour at minute 17, in `ivr worker` (huey keeps no result of periodic tasks)."""
    prune_once()


@app_task()
def prune_task() -> dict[str, int]:
    """Retention now, on a worker: `prune_task()` enqueues it (its result: what was removed)."""
    return prune_once()
