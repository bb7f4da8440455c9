"""What the web console keeps: its users, agents' routing feedback, versions of the rules and
prompts, and the work items that turn stored callback requests and voicemails into call-backs.

Typed models, the indexes the console's pages need on the call tables (declared here, beside
the queries that need them, so the call path's models stay as they are), and the console's
writes: Core statements in the request's transaction, like every store write (ivr.store.write).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from ivr.store import write
from ivr.store.models import Base, Event, UTCDateTime, utcnow

ROLES = ("agent", "supervisor", "admin")


class User(Base):
    """Someone who signs in to the console. No default user exists: `ivr users add` makes them."""

    __tablename__ = "console_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    # The agent's own phone line (E.164 or sip:), matched against the dialled line for screen pops
    # and called first when the agent calls a citizen back.
    line: Mapped[str] = mapped_column(String(128), default="")
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class Feedback(Base):
    """An agent's verdict on a call's routing: "wrong department → X" (or "right department")."""

    __tablename__ = "routing_feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_sid: Mapped[str] = mapped_column(ForeignKey("calls.sid", ondelete="CASCADE"), index=True)
    author: Mapped[str] = mapped_column(String(64))
    verdict: Mapped[str] = mapped_column(String(16))          # wrong | right
    routed_department: Mapped[str] = mapped_column(String(64), default="")
    correct_department: Mapped[str] = mapped_column(String(64), default="")
    # What the caller said and in which language, copied so the labelled export needs no join.
    text: Mapped[str] = mapped_column(Text, default="")
    language: Mapped[str] = mapped_column(String(16), default="en")
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class ContentVersion(Base):
    """One saved version of the routing rules (kind "rules") or a prompt catalogue ("prompts:en").

    The newest version of a kind is what every app instance serves (see ivr.web.console.live).
    """

    __tablename__ = "content_versions"
    __table_args__ = (Index("ix_content_versions_kind_id", "kind", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    author: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(String(255), default="")
    diff: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WorkItem(Base):
    """The console's handling of one stored callback request or voicemail (a `messages` row)."""

    __tablename__ = "work_items"
    __table_args__ = (Index("ix_work_items_status_due", "status", "due_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="open")   # open | claimed | done | gave_up
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(64), default=None)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_outcome: Mapped[str | None] = mapped_column(String(32), default=None)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    outbound_sid: Mapped[str | None] = mapped_column(String(64), default=None)
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


# Reports and the live queue read events by kind over a time range.
Index("ix_events_kind_created_at", Event.kind, Event.created_at)


# --- writes: Core statements in the session's transaction (ivr.store.write); the caller commits --
_USERS = User.__table__
_FEEDBACK = Feedback.__table__
_VERSIONS = ContentVersion.__table__
_WORK = WorkItem.__table__


def add_user(s: Session, **values: Any) -> None:
    """A new console user (`values`: the User columns; the caller has checked them)."""
    write.connection(s).execute(_USERS.insert().inline(), {"created_at": utcnow(), **values})


def update_user(s: Session, user_id: int, **values: Any) -> None:
    """Change user `user_id`'s columns (password hash, failed logins, lock, disabled …)."""
    write.connection(s).execute(update(_USERS).where(_USERS.c.id == user_id).values(**values))


def add_feedback(s: Session, **values: Any) -> None:
    """An agent's verdict on a call's routing (`values`: the Feedback columns)."""
    write.connection(s).execute(_FEEDBACK.insert().inline(), {"created_at": utcnow(), **values})


def add_content_version(s: Session, **values: Any) -> int:
    """Store a version of the rules or a prompt catalogue; returns its id (versions are numbered)."""
    return int(write.connection(s).execute(_VERSIONS.insert().returning(_VERSIONS.c.id),
                                           {"created_at": utcnow(), **values}).scalar_one())


def add_work_items(s: Session, messages: list[tuple[int, datetime]]) -> None:
    """An open work item for each (message id, due at)."""
    if messages:
        write.connection(s).execute(_WORK.insert(), [
            {"message_id": message_id, "status": "open", "due_at": due, "attempts": 0, "history": []}
            for message_id, due in messages])


def update_work_item(s: Session, item_id: int, *conditions: Any, **values: Any) -> int:
    """Change work item `item_id` (only if `conditions` hold); returns how many rows changed."""
    return int(write.connection(s).execute(update(_WORK).where(_WORK.c.id == item_id, *conditions)
                                           .values(**values)).rowcount)
