"""Service requests: what a citizen reported (by phone, text or Open311), its case number and status.

Every write is a Core statement on the session's connection, in the caller's transaction; nothing
here commits (the webhook or the command does, once). `create` is idempotent on `source_key` (the
CallSid, MessageSid or Open311 client's key that made it): a retry gets the same request back and
the department is notified once.

The record itself (`ServiceRequest`) is a plain value defined in ivr.routing.services, so the
outbox and the channels can name it without importing the store.
"""
from __future__ import annotations

import logging
import random
from datetime import datetime
from typing import Any, Iterable

from sqlalchemy import (Boolean, Float, ForeignKey, Index, Integer, String, Text, bindparam, func, select,
                        update)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from ivr import rules_source
from ivr.outbox import notify_department
from ivr.routing.rules import Rules
from ivr.routing.services import CASE_LENGTHS, CHANNELS, STATUSES, Service, ServiceRequest, StatusChange, \
    new_case_number, normalise_case_number
from ivr.store.models import Base, UTCDateTime, utcnow

__all__ = ["ServiceRequest", "StatusChange", "RequestError", "create", "by_case", "by_source", "set_status",
           "set_text_consent", "search", "history", "count"]

log = logging.getLogger(__name__)

MAX_DESCRIPTION = 4000
MAX_ADDRESS = 500
#: Random 7-digit numbers tried before moving to 9 digits, then 9-digit ones before giving up.
#: With 900,000 numbers, a clash is rare until hundreds of thousands exist; 9 digits then make it rare again.
_TRIES = {CASE_LENGTHS[0]: 8, CASE_LENGTHS[1]: 8}


class ServiceRequestRow(Base):
    """One service request (table definition; writes are Core statements below)."""

    __tablename__ = "service_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_number: Mapped[str] = mapped_column(String(16), unique=True)
    source_key: Mapped[str] = mapped_column(String(255), unique=True)
    channel: Mapped[str] = mapped_column(String(16))
    service_code: Mapped[str] = mapped_column(String(64))
    service_name: Mapped[str] = mapped_column(String(255), default="")
    intent: Mapped[str] = mapped_column(String(64), default="")
    department: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")
    address: Mapped[str | None] = mapped_column(Text, default=None)
    lat: Mapped[float | None] = mapped_column(Float, default=None)
    long: Mapped[float | None] = mapped_column(Float, default=None)
    language: Mapped[str] = mapped_column(String(16), default="en")
    contact_phone: Mapped[str | None] = mapped_column(String(64), default=None)
    contact_email: Mapped[str | None] = mapped_column(String(255), default=None)
    text_consent: Mapped[bool] = mapped_column(Boolean, default=False)
    call_sid: Mapped[str | None] = mapped_column(String(64), default=None)
    media_url: Mapped[str | None] = mapped_column(Text, default=None)
    status: Mapped[str] = mapped_column(String(16), default="open")
    status_notes: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    # Open311 and the console list by date (newest first), filtered by status or service.
    __table_args__ = (Index("ix_service_requests_created_at", "created_at"),
                      Index("ix_service_requests_status_created", "status", "created_at"),
                      Index("ix_service_requests_service_created", "service_code", "created_at"))


class StatusChangeRow(Base):
    """A request's history: created, acknowledged, closed, notes (who, when, what they wrote)."""

    __tablename__ = "service_request_updates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("service_requests.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RequestError(ValueError):
    """A request cannot be made or changed as asked (the message says why, for the citizen's client)."""


_T = ServiceRequestRow.__table__
_H = StatusChangeRow.__table__
# ON CONFLICT DO NOTHING with no target covers both unique columns: a clash on source_key is a retry
# (answered with the stored request), a clash on case_number is bad luck (another number is drawn).
_INSERT = {"postgresql": postgresql.insert(_T).on_conflict_do_nothing(),
           "sqlite": sqlite.insert(_T).on_conflict_do_nothing()}
_FIELDS = tuple(f for f in ServiceRequest.__dataclass_fields__)
_COLUMNS = [_T.c[name] for name in _FIELDS]
_BY_SOURCE = select(*_COLUMNS).where(_T.c.source_key == bindparam("key"))
_BY_CASE = select(*_COLUMNS).where(_T.c.case_number == bindparam("case"))
_system_random = random.SystemRandom()


def _record(row: Any) -> ServiceRequest:
    values = dict(row._mapping)
    values["text_consent"] = bool(values["text_consent"])
    return ServiceRequest(**values)


def _text(value: str | None, what: str, limit: int, *, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise RequestError(f"{what} is required")
        return None
    if not isinstance(value, str):
        raise RequestError(f"{what} must be text")
    value = value.strip()
    if len(value) > limit:
        raise RequestError(f"{what} is longer than {limit} characters")
    if required and not value:
        raise RequestError(f"{what} is required")
    return value or None


def _coordinate(value: float | None, what: str, bound: float) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RequestError(f"{what} must be a number") from None
    if not -bound <= number <= bound or number != number:
        raise RequestError(f"{what} must be between {-bound:g} and {bound:g}")
    return number


def create(s: Session, *, source_key: str, channel: str, service: Service, description: str,
           address: str | None, lat: float | None, long: float | None, language: str,
           contact_phone: str | None, contact_email: str | None, text_consent: bool,
           call_sid: str | None = None, media_url: str | None = None, rules: Rules | None = None,
           rng: random.Random | None = None, now: datetime | None = None) -> ServiceRequest:
    """The request made by `source_key`: created (and its department notified) the first time,
    returned as stored on every retry. In the caller's transaction; the caller commits.

    `rules` are the rules serving now (default: the current app's, `ivr.rules_source`): the outbox
    reads the department's `notify` targets from them. `rng` and `now` are for tests.
    """
    key = _text(source_key, "source_key", 255, required=True)
    existing = s.connection().execute(_BY_SOURCE, {"key": key}).first()
    if existing is not None:
        return _record(existing)
    if channel not in CHANNELS:
        raise RequestError(f"channel must be one of {', '.join(CHANNELS)}, not {channel!r}")
    if not language or not isinstance(language, str) or len(language) > 16:
        raise RequestError("language must be a language code such as 'en'")
    when = now or utcnow()
    values = {
        "source_key": key, "channel": channel, "service_code": service.code,
        # The city's staff read it: the name in the rules' first (default) language.
        "service_name": next(iter(service.name.values()), service.code),
        "intent": service.intent, "department": service.department,
        "description": _text(description, "description", MAX_DESCRIPTION) or "",
        "address": _text(address, "address", MAX_ADDRESS),
        "lat": _coordinate(lat, "lat", 90.0), "long": _coordinate(long, "long", 180.0),
        "language": language, "contact_phone": _text(contact_phone, "phone", 64),
        "contact_email": _text(contact_email, "email", 255), "text_consent": bool(text_consent),
        "call_sid": _text(call_sid, "call_sid", 64), "media_url": _text(media_url, "media_url", 2000),
        "status": "open", "status_notes": "", "created_at": when, "updated_at": when,
    }
    conn = s.connection()
    insert = _INSERT[conn.dialect.name]
    draw = rng or _system_random
    for length, tries in _TRIES.items():
        for _ in range(tries):
            values["case_number"] = new_case_number(draw, length)
            if conn.execute(insert, values).rowcount:
                return _created(s, key, when, rules)
            again = conn.execute(_BY_SOURCE, {"key": key}).first()
            if again is not None:        # the same request, made at the same moment by a retry
                return _record(again)
            log.info("case number clash (%d digits); drawing another", length)
    raise RuntimeError("no free case number after %d draws — the random source is broken" % sum(_TRIES.values()))


def _created(s: Session, key: str, when: datetime, rules: Rules | None) -> ServiceRequest:
    conn = s.connection()
    request = _record(conn.execute(_BY_SOURCE, {"key": key}).one())
    conn.execute(_H.insert(), {"request_id": request.id, "status": "open", "note": f"received by {request.channel}",
                               "author": request.channel, "created_at": when})
    s.info["wrote"] = True
    notify_department(s, request, rules if rules is not None else rules_source.current_rules())
    return request


def by_source(s: Session, source_key: str) -> ServiceRequest | None:
    """The request `source_key` made, if any."""
    row = s.connection().execute(_BY_SOURCE, {"key": source_key}).first()
    return None if row is None else _record(row)


def by_case(s: Session, case_number: str) -> ServiceRequest | None:
    """The request with this case number (spaces, dashes and spoken digits tolerated), or None."""
    number = normalise_case_number(case_number)
    if number is None:
        return None
    row = s.connection().execute(_BY_CASE, {"case": number}).first()
    return None if row is None else _record(row)


def set_status(s: Session, case_number: str, status: str, note: str, by: str,
               now: datetime | None = None) -> ServiceRequest:
    """Move a request to `status` (the same status adds a note) and record who did it and why."""
    if status not in STATUSES:
        raise RequestError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    request = by_case(s, case_number)
    if request is None:
        raise RequestError(f"no service request {case_number!r}")
    note = _text(note, "note", MAX_DESCRIPTION) or ""
    author = _text(by, "by", 64, required=True) or ""
    when = now or utcnow()
    conn = s.connection()
    changes: dict[str, Any] = {"status": status, "updated_at": when}
    if note:
        changes["status_notes"] = note     # Open311's status_notes: the latest word to the public
    conn.execute(update(_T).where(_T.c.id == request.id).values(changes))
    conn.execute(_H.insert(), {"request_id": request.id, "status": status, "note": note, "author": author,
                               "created_at": when})
    s.info["wrote"] = True
    return _record(conn.execute(_BY_CASE, {"case": request.case_number}).one())


def set_text_consent(s: Session, case_number: str, consent: bool) -> bool:
    """Record whether the citizen agreed to be texted about the request (the phone asks after
    filing it: "press 1 to get it by text"). False when there is no such request.

    Not a change of the request itself: its status, history and updated_at (Open311's
    updated_datetime) stay as they are.
    """
    number = normalise_case_number(case_number)
    if number is None:
        return False
    changed = s.connection().execute(update(_T).where(_T.c.case_number == number)
                                     .values(text_consent=bool(consent))).rowcount
    s.info["wrote"] = True
    return bool(changed)


def history(s: Session, case_number: str) -> list[StatusChange]:
    """Every change of the request, oldest first ([] for an unknown case)."""
    number = normalise_case_number(case_number)
    if number is None:
        return []
    rows = s.connection().execute(
        select(_H.c.status, _H.c.note, _H.c.author, _H.c.created_at).join(_T, _T.c.id == _H.c.request_id)
        .where(_T.c.case_number == number).order_by(_H.c.created_at, _H.c.id)).all()
    return [StatusChange(status=r.status, note=r.note, by=r.author, at=r.created_at) for r in rows]


def _one_or_many(value: str | Iterable[str] | None) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


def _filtered(stmt: Any, *, status: Any, service_code: Any, department: Any, start: datetime | None,
              end: datetime | None, case_numbers: Iterable[str] | None) -> Any:
    for column, wanted in ((_T.c.status, status), (_T.c.service_code, service_code),
                           (_T.c.department, department), (_T.c.case_number, case_numbers)):
        values = _one_or_many(wanted)
        if values is not None:
            stmt = stmt.where(column.in_(values))
    if start is not None:
        stmt = stmt.where(_T.c.created_at >= start)
    if end is not None:
        stmt = stmt.where(_T.c.created_at <= end)
    return stmt


def search(s: Session, *, status: str | Iterable[str] | None = None,
           service_code: str | Iterable[str] | None = None, start: datetime | None = None,
           end: datetime | None = None, limit: int = 1000, department: str | Iterable[str] | None = None,
           case_numbers: Iterable[str] | None = None, offset: int = 0) -> list[ServiceRequest]:
    """Requests made between `start` and `end` (inclusive, aware datetimes), newest first.

    `status`, `service_code`, `department` and `case_numbers` take one value or several.
    """
    stmt = _filtered(select(*_COLUMNS), status=status, service_code=service_code, department=department,
                     start=start, end=end, case_numbers=case_numbers)
    stmt = stmt.order_by(_T.c.created_at.desc(), _T.c.id.desc()).limit(max(0, limit)).offset(max(0, offset))
    return [_record(row) for row in s.connection().execute(stmt)]


def count(s: Session, **filters: Any) -> int:
    """How many requests `search` would find with these filters and no limit."""
    stmt = _filtered(select(func.count()).select_from(_T), status=filters.get("status"),
                     service_code=filters.get("service_code"), department=filters.get("department"),
                     start=filters.get("start"), end=filters.get("end"), case_numbers=filters.get("case_numbers"))
    return int(s.connection().execute(stmt).scalar_one())
