"""Typed SQLAlchemy 2.0 models: one row per call, plus what happened during it.

The call's conversation state lives here (``Call.state``), not in process memory, so any
worker can serve any webhook of any call and a restart mid-call loses nothing.
Phone numbers are stored in full (agents need them); logs mask them (see ``privacy``).
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (the only kind of time we store)."""
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend.

    SQLite has no time zones and hands back naive values; we store UTC and re-attach it,
    so callers never compare naive with aware datetimes.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is timezone.utc:   # what utcnow() gives: nothing to convert
            return value
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware (UTC) time")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    """Declarative base; ``Base.metadata`` is what Alembic migrations must match."""


class Call(Base):
    """One phone call, keyed by Twilio's CallSid."""

    __tablename__ = "calls"

    sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    from_number: Mapped[str] = mapped_column(String(64), default="")
    to_number: Mapped[str] = mapped_column(String(64), default="")
    language: Mapped[str] = mapped_column(String(16), default="en")
    # CallState as JSON (dataclasses.asdict); see calls.load_state for how it is read back.
    state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # A turn recognised on the media-stream websocket, waiting for the <Connect action> webhook.
    pending_turn: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    status: Mapped[str] = mapped_column(String(32), default="in-progress")  # Twilio CallStatus
    outcome: Mapped[str | None] = mapped_column(String(32), default=None)
    outcome_detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    duration_s: Mapped[float | None] = mapped_column(Float, default=None)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    turns: Mapped[list[Turn]] = relationship(
        back_populates="call", order_by="Turn.id", cascade="all, delete-orphan", passive_deletes=True)
    events: Mapped[list[Event]] = relationship(
        back_populates="call", order_by="Event.id", cascade="all, delete-orphan", passive_deletes=True)
    recordings: Mapped[list[Recording]] = relationship(
        back_populates="call", order_by="Recording.id", cascade="all, delete-orphan", passive_deletes=True)
    messages: Mapped[list[Message]] = relationship(
        back_populates="call", order_by="Message.id", cascade="all, delete-orphan", passive_deletes=True)


class Turn(Base):
    """One prompt and the caller's answer, with how it was classified and decided."""

    __tablename__ = "turns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_sid: Mapped[str] = mapped_column(ForeignKey("calls.sid", ondelete="CASCADE"), index=True)
    step: Mapped[str] = mapped_column(String(32))
    prompt: Mapped[str] = mapped_column(Text, default="")
    heard: Mapped[str | None] = mapped_column(Text, default=None)
    digits: Mapped[str | None] = mapped_column(String(32), default=None)
    confidence: Mapped[float | None] = mapped_column(Float, default=None)
    classification: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    decision: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    call: Mapped[Call] = relationship(back_populates="turns")


class Event(Base):
    """Something that happened outside a turn: a decision after a dial, an outcome, a status."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_sid: Mapped[str] = mapped_column(ForeignKey("calls.sid", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    call: Mapped[Call] = relationship(back_populates="events")


class Recording(Base):
    """A recording Twilio made for this call (caller's answer, voicemail, the whole call)."""

    __tablename__ = "recordings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_sid: Mapped[str] = mapped_column(ForeignKey("calls.sid", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(32))
    duration_s: Mapped[float | None] = mapped_column(Float, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    call: Mapped[Call] = relationship(back_populates="recordings")


class Message(Base):
    """A voicemail or callback request a department must act on."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_sid: Mapped[str] = mapped_column(ForeignKey("calls.sid", ondelete="CASCADE"), index=True)
    department: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    recording_url: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    call: Mapped[Call] = relationship(back_populates="messages")


class IdempotentResponse(Base):
    """The body we answered a webhook with, so a Twilio retry gets the same answer, once."""

    __tablename__ = "idempotent_responses"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

