"""People who text the city line: their STOP/START choice, their language, and a half-told report.

One row per phone number, created the first time it texts (or is texted). `opted_out` is read by
the outbox at SEND time, so a STOP stops everything still queued for that number — carrier rules
(CTIA) and Twilio's own STOP handling require it. The number is kept after STOP on purpose: it is
the proof of the opt-out. Writes are Core statements in the caller's transaction (no commit).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping

from sqlalchemy import JSON, Boolean, String, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, Session, mapped_column

from ivr.store.models import Base, UTCDateTime, utcnow

MAX_PHONE = 64


class SmsContact(Base):
    """One texter (keyed by their number as Twilio sends it, E.164)."""

    __tablename__ = "sms_contacts"

    phone: Mapped[str] = mapped_column(String(MAX_PHONE), primary_key=True)
    language: Mapped[str | None] = mapped_column(String(16), default=None)   # None: not chosen yet
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False)
    opted_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    opted_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # What the conversation waits for (e.g. the location of a reported problem): see ivr.routing.sms_dialogue.
    pending: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


@dataclass(frozen=True)
class Contact:
    """A texter as the conversation sees it."""
    phone: str
    language: str | None
    opted_out: bool
    opted_out_at: datetime | None
    pending: Mapping[str, Any] | None


_TABLE = SmsContact.__table__
_INSERT = {"postgresql": postgresql.insert(_TABLE).on_conflict_do_nothing(),
           "sqlite": sqlite.insert(_TABLE).on_conflict_do_nothing()}
_SELECT = select(_TABLE.c.phone, _TABLE.c.language, _TABLE.c.opted_out, _TABLE.c.opted_out_at,
                 _TABLE.c.pending).where(_TABLE.c.phone == bindparam("b_phone"))
_OPTED_OUT = select(_TABLE.c.opted_out).where(_TABLE.c.phone == bindparam("b_phone"))


def normalise_phone(phone: str) -> str:
    """The number as we key it: stripped, without spaces (ValueError when there is none)."""
    value = "".join((phone or "").split())
    if not value:
        raise ValueError("a phone number is needed")
    if len(value) > MAX_PHONE:
        raise ValueError(f"phone number longer than {MAX_PHONE} characters")
    return value


def _ensure(conn: Connection, phone: str, now: datetime) -> None:
    """The row exists after this (one INSERT … ON CONFLICT DO NOTHING; a repeat is harmless)."""
    conn.execute(_INSERT[conn.dialect.name], {"phone": phone, "opted_out": False, "created_at": now,
                                              "updated_at": now})


def _update(s: Session, phone: str, now: datetime | None, **values: Any) -> None:
    now = now or utcnow()
    phone = normalise_phone(phone)
    conn = s.connection()
    _ensure(conn, phone, now)
    conn.execute(update(_TABLE).where(_TABLE.c.phone == phone).values(updated_at=now, **values))


def contact(s: Session, phone: str) -> Contact | None:
    """The texter with this number, or None if they never texted."""
    row = s.connection().execute(_SELECT, {"b_phone": normalise_phone(phone)}).first()
    if row is None:
        return None
    return Contact(phone=row.phone, language=row.language, opted_out=bool(row.opted_out),
                   opted_out_at=row.opted_out_at, pending=row.pending)


def opted_out(s: Session, phone: str) -> bool:
    """True when this number texted STOP (and not START since): send it nothing."""
    try:
        key = normalise_phone(phone)
    except ValueError:
        return False
    return bool(s.connection().execute(_OPTED_OUT, {"b_phone": key}).scalar())


def opt_out(s: Session, phone: str, now: datetime | None = None) -> None:
    """STOP: remember it (with when) and forget any half-told report."""
    now = now or utcnow()
    _update(s, phone, now, opted_out=True, opted_out_at=now, pending=None)


def opt_in(s: Session, phone: str, now: datetime | None = None) -> None:
    """START: texts may be sent again."""
    now = now or utcnow()
    _update(s, phone, now, opted_out=False, opted_in_at=now)


def set_language(s: Session, phone: str, language: str, now: datetime | None = None) -> None:
    """The language replies are written in from now on."""
    _update(s, phone, now, language=language)


def set_pending(s: Session, phone: str, pending: Mapping[str, Any] | None, now: datetime | None = None) -> None:
    """What the conversation waits for next (None: nothing)."""
    _update(s, phone, now, pending=dict(pending) if pending is not None else None)


def _upsert(dialect: Any) -> Any:
    insert = dialect.insert(_TABLE)
    return insert.on_conflict_do_update(index_elements=[_TABLE.c.phone], set_={
        "language": insert.excluded.language, "pending": insert.excluded.pending,
        "updated_at": insert.excluded.updated_at})


# The end of every SMS webhook: one statement, built once (an INSERT … ON CONFLICT DO UPDATE).
_SAVE = {"postgresql": _upsert(postgresql), "sqlite": _upsert(sqlite)}


def save(s: Session, phone: str, *, language: str | None, pending: Mapping[str, Any] | None,
         now: datetime | None = None) -> None:
    """Language and pending draft in one statement (the usual end of an SMS webhook)."""
    now = now or utcnow()
    conn = s.connection()
    conn.execute(_SAVE[conn.dialect.name], {
        "phone": normalise_phone(phone), "language": language, "opted_out": False, "created_at": now,
        "updated_at": now, "pending": dict(pending) if pending is not None else None})
