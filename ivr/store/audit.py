"""The audit log: who did what to which thing, when — one general table for every edge.

Used by the JSON API (every read: the token's name, what was read) and meant for the web
console too (logins, rules changes): `actor` says who (``token:reports``, ``user:alice``),
`action` what (``api.calls.read``, ``console.login``), `target` which thing (a CallSid, a
rules version), `detail` anything else worth keeping (never a full phone number).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from sqlalchemy import JSON, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from ivr.store import write
from ivr.store.models import Base, UTCDateTime, utcnow

MAX_ACTOR = 128
MAX_ACTION = 64
MAX_TARGET = 255


class AuditEntry(Base):
    """One audited action."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(MAX_ACTOR), index=True)
    action: Mapped[str] = mapped_column(String(MAX_ACTION), index=True)
    target: Mapped[str] = mapped_column(String(MAX_TARGET), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


# Writes are Core statements in the session's transaction (ivr.store.write).
_INSERT = AuditEntry.__table__.insert().inline()


def record(s: Session, actor: str, action: str, target: str = "",
           detail: Mapping[str, Any] | None = None) -> None:
    """Write an entry in the session's transaction (the caller commits, with the action it describes)."""
    if not actor or not action:
        raise ValueError("an audit entry needs an actor and an action")
    write.connection(s).execute(_INSERT, {"at": utcnow(), "actor": actor[:MAX_ACTOR], "action": action[:MAX_ACTION],
                                     "target": (target or "")[:MAX_TARGET], "detail": dict(detail or {})})


def recent(s: Session, limit: int = 100, *, actor: str | None = None,
           action: str | None = None) -> list[AuditEntry]:
    """The newest entries first, optionally only one actor's or one action's."""
    stmt = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)
    if actor:
        stmt = stmt.where(AuditEntry.actor == actor)
    if action:
        stmt = stmt.where(AuditEntry.action == action)
    return list(s.scalars(stmt))
