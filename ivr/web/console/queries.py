"""The questions the console's pages ask the database, each in a bounded number of queries.

Every page is served from indexed ranges (calls.started_at, events(kind, created_at),
work_items(status, due_at)) and pages of at most PAGE rows, so a page's cost does not grow
with the number of stored calls (see bench/console.py).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from ivr.store import models
from ivr.store.console import Feedback

PAGE = 50
#: A call still "waiting" after this long had its status callback lost; it is not shown as live.
QUEUE_HORIZON = timedelta(hours=4)
POP_HORIZON = timedelta(minutes=2)
QUEUED_OUTCOMES = ("queued", "operator")
Call, Turn, Event = models.Call, models.Turn, models.Event
DEPARTMENT = Call.outcome_detail["department"].as_string()


def digits(line: str | None) -> str:
    """A line reduced for matching: digits of a phone number, or the lower-cased SIP/client URI."""
    text = (line or "").strip()
    if ":" in text and not text.startswith("+"):
        return text.lower()
    return re.sub(r"\D", "", text)


@dataclass
class Waiting:
    sid: str
    department: str
    since: datetime
    heard: str
    intent: str | None
    confidence: float | None
    language: str
    from_number: str
    waited_s: int = 0


def waiting_now(s: Session, now: datetime) -> list[Waiting]:
    """Callers in a queue right now, longest wait first: queued, not ended, not yet bridged."""
    rows = s.execute(select(Call.sid, Call.state, Call.from_number, Call.language, DEPARTMENT)
                     .where(Call.started_at >= now - QUEUE_HORIZON, Call.outcome.in_(QUEUED_OUTCOMES),
                            Call.ended_at.is_(None))).all()
    # The operator desk may answer by queue too: its callers wait like any other (step "queued").
    rows = [row for row in rows if (row.state or {}).get("step") == "queued"]
    if not rows:
        return []
    sids = [row.sid for row in rows]
    enqueued: dict[str, datetime] = {}
    left: dict[str, datetime] = {}
    # By call only (a call has a handful of events): with a kind filter too, SQLite's planner
    # walks the (kind, created_at) index over the whole history instead (measured 0.6 s at 100k calls).
    for sid, kind, detail, at in s.execute(
            select(Event.call_sid, Event.kind, Event.detail, Event.created_at).where(Event.call_sid.in_(sids))):
        if kind not in ("outcome", "queue", "bridged"):
            continue
        if kind == "outcome":
            if (detail or {}).get("outcome") in QUEUED_OUTCOMES:
                enqueued[sid] = max(enqueued.get(sid, at), at)
        else:
            left[sid] = max(left.get(sid, at), at)
    waiting = []
    for row in rows:
        since = enqueued.get(row.sid)
        if since is None or (row.sid in left and left[row.sid] >= since):
            continue
        state = row.state or {}
        waiting.append(Waiting(row.sid, row[4] or state.get("department") or "", since, state.get("heard") or "",
                               state.get("intent"), state.get("confidence"), row.language or "en",
                               row.from_number or "", max(0, int((now - since).total_seconds()))))
    waiting.sort(key=lambda w: w.since)
    return waiting


def pops_for(s: Session, line: str, after_id: int, now: datetime) -> list[dict[str, Any]]:
    """Calls just bridged to `line` (events newer than `after_id`), for the agent's screen pop."""
    wanted = digits(line)
    if not wanted:
        return []
    found = []
    for event_id, sid, detail in s.execute(
            select(Event.id, Event.call_sid, Event.detail)
            .where(Event.kind == "bridged", Event.created_at >= now - POP_HORIZON, Event.id > after_id)
            .order_by(Event.id)):
        if digits((detail or {}).get("line")) == wanted:
            found.append({"event": event_id, "sid": sid})
    return found


def last_event_id(s: Session) -> int:
    return s.scalar(select(func.max(Event.id))) or 0


@dataclass
class Search:
    start: datetime | None = None
    end: datetime | None = None
    department: str = ""
    outcome: str = ""
    words: str = ""
    before: tuple[datetime, str] | None = None   # keyset cursor: older than this call


@dataclass
class CallRow:
    sid: str
    started_at: datetime
    from_number: str
    language: str
    outcome: str | None
    department: str
    duration_s: float | None
    heard: str = ""


@dataclass
class Page:
    rows: list[CallRow] = field(default_factory=list)
    more: bool = False


def search_calls(s: Session, query: Search) -> Page:
    """A page of calls matching `query`, newest first (keyset pagination on started_at, sid)."""
    stmt = select(Call.sid, Call.started_at, Call.from_number, Call.language, Call.outcome, DEPARTMENT,
                  Call.duration_s, Call.state["heard"].as_string())
    if query.start:
        stmt = stmt.where(Call.started_at >= query.start)
    if query.end:
        stmt = stmt.where(Call.started_at < query.end)
    if query.department:
        stmt = stmt.where(DEPARTMENT == query.department)
    if query.outcome:
        stmt = stmt.where(Call.outcome == query.outcome)
    for word in query.words.split()[:5]:
        # Calls whose turns mention the word, found from the turns side: one pass over the turns,
        # rather than one lookup per call walking back through the whole history when few match.
        pattern = f"%{word.lower()}%"
        stmt = stmt.where(Call.sid.in_(select(Turn.call_sid).where(func.lower(Turn.heard).like(pattern))))
    if query.before:
        at, sid = query.before
        stmt = stmt.where(or_(Call.started_at < at, and_(Call.started_at == at, Call.sid < sid)))
    rows = s.execute(stmt.order_by(Call.started_at.desc(), Call.sid.desc()).limit(PAGE + 1)).all()
    page = Page([CallRow(r[0], r[1], r[2] or "", r[3] or "en", r[4], r[5] or "", r[6], r[7] or "")
                 for r in rows[:PAGE]], more=len(rows) > PAGE)
    return page


def feedback_for(s: Session, sid: str) -> list[Feedback]:
    return list(s.scalars(select(Feedback).where(Feedback.call_sid == sid).order_by(Feedback.id)))
