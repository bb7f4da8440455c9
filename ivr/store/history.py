"""What admins read: calls as JSON documents for the API and `ivr calls`."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from ivr.store import models

MAX_RECENT = 500


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _summary(call: models.Call) -> dict[str, Any]:
    return {
        "sid": call.sid,
        "from": call.from_number,
        "to": call.to_number,
        "language": call.language,
        "started": _iso(call.started_at),
        "ended": _iso(call.ended_at),
        "duration_s": call.duration_s,
        "status": call.status,
        "outcome": call.outcome,
        "outcome_detail": call.outcome_detail or {},
    }


def _turn(turn: models.Turn) -> dict[str, Any]:
    return {
        "at": _iso(turn.created_at), "step": turn.step, "prompt": turn.prompt,
        "heard": turn.heard, "digits": turn.digits, "confidence": turn.confidence,
        "classification": turn.classification, "decision": turn.decision,
    }


def _decisions(call: models.Call) -> list[dict[str, Any]]:
    """Every decision in time order: those taken on a turn and those taken between turns."""
    timed: list[tuple[datetime, int, dict[str, Any]]] = []
    for turn in call.turns:
        if turn.decision is not None:
            timed.append((turn.created_at, 0, {"at": _iso(turn.created_at), "step": turn.step,
                                               **turn.decision}))
    for item in call.events:
        if item.kind == "decision":
            timed.append((item.created_at, 1, {"at": _iso(item.created_at), **item.detail}))
    timed.sort(key=lambda entry: (entry[0], entry[1]))
    return [entry[2] for entry in timed]


def call_record(s: Session, sid: str) -> dict[str, Any] | None:
    """Everything we know about call `sid` as a JSON-ready dict, or None if unknown."""
    stmt = (select(models.Call).where(models.Call.sid == sid)
            .options(selectinload(models.Call.turns), selectinload(models.Call.events),
                     selectinload(models.Call.recordings), selectinload(models.Call.messages)))
    call = s.scalars(stmt).first()
    if call is None:
        return None
    return {
        **_summary(call),
        "state": call.state or {},
        "turns": [_turn(t) for t in call.turns],
        "decisions": _decisions(call),
        "events": [{"at": _iso(e.created_at), "kind": e.kind, "detail": e.detail} for e in call.events],
        "recordings": [{"at": _iso(r.created_at), "url": r.url, "kind": r.kind, "duration_s": r.duration_s}
                       for r in call.recordings],
        "messages": [{"at": _iso(m.created_at), "department": m.department, "kind": m.kind,
                      "recording_url": m.recording_url} for m in call.messages],
    }


def recent_calls(s: Session, limit: int) -> list[dict[str, Any]]:
    """Summaries of the `limit` (1..500) most recently started calls, newest first."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_RECENT:
        raise ValueError(f"limit must be an integer from 1 to {MAX_RECENT}, got {limit!r}")
    stmt = (select(models.Call).order_by(models.Call.started_at.desc(), models.Call.sid.desc())
            .limit(limit))
    return [_summary(call) for call in s.scalars(stmt)]
