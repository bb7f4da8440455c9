"""Saved versions of the rules and prompts, and how every app instance comes to serve the newest.

Where the truth lives: the database (table ``content_versions``). Several app instances on one
PostgreSQL each keep serving from their own files (IVR_RULES_PATH, IVR_PROMPTS_DIR/<lang>.yaml),
and each instance checks, at most once per IVR_CONTENT_SYNC_S seconds (default 1) and before a
request, whether a newer version was saved by anyone; if so it writes that text to its file
atomically (temporary file + rename) and the file watchers swap it in (the rules at once).
So an edit reaches every instance within about a second, and a restarted instance catches up.

Once the console has saved a version of a kind, the database is its source of truth: a file that
differs (a hand edit, a fresh deploy of the shipped file) is replaced by the newest saved version,
with a warning in the log, when the instance starts.
"""
from __future__ import annotations

import difflib
import hashlib
import logging
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from flask import Flask, current_app
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ivr import rules_source
from ivr.store import audit, console, db
from ivr.store.console import ContentVersion

log = logging.getLogger(__name__)
EXTENSION = "ivr.console.live"
RULES = "rules"
FAILURE_BACKOFF_S = 30


def prompts_kind(language: str) -> str:
    return f"prompts:{language}"


def path_of(app: Flask, kind: str) -> Path:
    """The file this instance serves `kind` from."""
    if kind == RULES:
        return Path(app.config["IVR_RULES_PATH"])
    if kind.startswith("prompts:"):
        return Path(app.config["IVR_PROMPTS_DIR"]) / f"{kind.split(':', 1)[1]}.yaml"
    raise ValueError(f"unknown content kind {kind!r}")


def display_name(kind: str) -> str:
    """What FILE:LINE problems and diffs call the file: routing_rules.yaml, prompts/en.yaml."""
    return "routing_rules.yaml" if kind == RULES else f"prompts/{kind.split(':', 1)[1]}.yaml"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` so a reader sees the old file or the new one, never half."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def versions(s: Session, kind: str, limit: int = 50) -> list[ContentVersion]:
    return list(s.scalars(select(ContentVersion).where(ContentVersion.kind == kind)
                          .order_by(ContentVersion.id.desc()).limit(limit)))


def newest(s: Session, kind: str) -> ContentVersion | None:
    return s.scalars(select(ContentVersion).where(ContentVersion.kind == kind)
                     .order_by(ContentVersion.id.desc()).limit(1)).first()


def save(s: Session, kind: str, text: str, author: str, note: str = "") -> int:
    """Store a new version of `kind` (already validated), audit it, commit, and serve it here now;
    returns the new version's number.

    The first save of a kind also stores what was being served before, so it can be rolled back to.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    previous = newest(s, kind)
    if previous is None:
        served = path_of(app, kind).read_text(encoding="utf-8")
        previous_id, previous_text = console.add_content_version(
            s, kind=kind, text=served, sha256=sha(served), author="(file)",
            note="as served before the first console edit", diff=""), served
    else:
        previous_id, previous_text = previous.id, previous.text
    name = display_name(kind)
    diff = "".join(difflib.unified_diff(previous_text.splitlines(keepends=True), text.splitlines(keepends=True),
                                        f"{name} (version {previous_id})", f"{name} (new)"))
    version = console.add_content_version(s, kind=kind, text=text, sha256=sha(text), author=author,
                                          note=note[:255], diff=diff)
    changed = sum(1 for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---"))
    audit.record(s, f"user:{author}", "console.rules.save" if kind == RULES else "console.prompts.save",
                 f"{kind}@{version}", {"note": note[:255], "lines_changed": changed})
    s.commit()
    apply_here(app, kind, version, text)
    return version


def apply_here(app: Flask, kind: str, version_id: int, text: str) -> None:
    """Write `text` to this instance's file for `kind` (if different) and reload it now."""
    state = _state(app)
    path = path_of(app, kind)
    try:
        current = path.read_text(encoding="utf-8")
    except OSError:
        current = None
    if current != text:
        write_atomically(path, text)
        log.info("serving %s version %d (written to %s)", kind, version_id, path)
    state.applied[kind] = version_id
    if kind == RULES:
        with app.app_context():
            rules_source.check_now()


class _SyncState:
    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.next_check = 0.0
        self.applied: dict[str, int] = {}
        self.lock = threading.Lock()


def _state(app: Flask) -> _SyncState:
    return app.extensions[EXTENSION]


def sync(app: Flask, *, force: bool = False) -> None:
    """Serve the newest saved version of each kind if this instance does not yet (throttled)."""
    state = _state(app)
    now = time.monotonic()
    if not force and now < state.next_check:
        return
    if not state.lock.acquire(blocking=force):
        return   # another thread of this process is looking right now
    try:
        state.next_check = now + state.interval
        with db.engine(app).connect() as conn:
            heads = dict(conn.execute(select(ContentVersion.kind, func.max(ContentVersion.id))
                                      .group_by(ContentVersion.kind)).all())
            for kind, head in heads.items():
                if state.applied.get(kind) == head:
                    continue
                row = conn.execute(select(ContentVersion.text, ContentVersion.created_at)
                                   .where(ContentVersion.id == head)).one()
                _catch_up(app, state, kind, head, row.text, row.created_at)
    except SQLAlchemyError as exc:
        # The database is down: keep serving what we have, and do not make every webhook of the
        # next half minute wait for another connect timeout on its way to the rescue answer.
        state.next_check = time.monotonic() + FAILURE_BACKOFF_S
        log.warning("content sync skipped for %d s: %s", FAILURE_BACKOFF_S, type(exc).__name__)
    except OSError as exc:
        log.error("cannot write the newest saved rules/prompts to disk: %s", exc)
    finally:
        state.lock.release()


def _catch_up(app: Flask, state: _SyncState, kind: str, head: int, text: str, saved_at: Any) -> None:
    path = path_of(app, kind)
    if kind not in state.applied and path.exists() and path.read_text(encoding="utf-8") != text:
        log.warning("%s differs from console version %d saved %s; serving the saved version (the database "
                    "is the source of truth once the console has saved one)", path, head, saved_at)
    apply_here(app, kind, head, text)


def init_app(app: Flask) -> None:
    app.extensions[EXTENSION] = _SyncState(float(app.config.get("IVR_CONTENT_SYNC_S", 1.0)))

    @app.before_request
    def _sync_content() -> None:
        sync(app)
