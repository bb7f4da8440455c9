"""Topic alerts and who subscribed to them.

An alert ("water main break on Elm Street; crews are on site") belongs to a topic of the rules
(`topics:`). While it is active (not ended, `until` not passed), callers and texters whose request
is one of the topic's intents hear it first, and each time is counted, so the city sees how many
contacts it answered. The topic's intents are copied onto the alert when it is published: an
alert keeps meaning what it meant even if the rules change while it runs, and the store needs no
rules to find it. Subscribers are texted through the outbox (`ivr.jobs.alerts.publish`).

Writes are Core statements in the caller's transaction (no commit), as everywhere in the store.
"""
from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping

from sqlalchemy import (JSON, Engine, Integer, String, UniqueConstraint, and_, bindparam, delete, func, or_,
                        select, update)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from ivr.store.models import Base, UTCDateTime, utcnow
from ivr.store.sms_contacts import normalise_phone

CHANNELS = ("voice", "sms")     # where an alert can be heard (a counter column each)
MAX_TOPIC = 64


class AlertRecord(Base):
    """One published alert."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    topic: Mapped[str] = mapped_column(String(MAX_TOPIC), index=True)
    intents: Mapped[list[str]] = mapped_column(JSON, default=list)      # the topic's, when published
    message: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)  # language → text
    created_by: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    ended_by: Mapped[str | None] = mapped_column(String(128), default=None)
    recipients: Mapped[int] = mapped_column(Integer, default=0)   # subscriber texts queued
    heard_voice: Mapped[int] = mapped_column(Integer, default=0)  # callers who heard it first
    heard_sms: Mapped[int] = mapped_column(Integer, default=0)    # texters told about it


class Subscription(Base):
    """A number that wants a topic's alerts."""

    __tablename__ = "subscriptions"
    __table_args__ = (UniqueConstraint("phone", "topic", name="uq_subscriptions_phone_topic"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    phone: Mapped[str] = mapped_column(String(64))
    topic: Mapped[str] = mapped_column(String(MAX_TOPIC), index=True)
    language: Mapped[str] = mapped_column(String(16), default="en")
    channel: Mapped[str] = mapped_column(String(16), default="sms")   # where they subscribed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


@dataclass(frozen=True)
class Alert:
    """An alert as the edges use it."""
    id: int
    topic: str
    intents: tuple[str, ...]
    message: Mapping[str, str]
    created_by: str
    created_at: datetime
    until: datetime | None
    ended_at: datetime | None
    recipients: int
    heard: Mapping[str, int]     # channel → times heard

    def text(self, language: str) -> str:
        """The message in `language`, else in the language it was first written in."""
        return self.message.get(language) or next(iter(self.message.values()), "")

    def active(self, now: datetime) -> bool:
        return self.ended_at is None and self.created_at <= now and (self.until is None or now < self.until)


@dataclass(frozen=True)
class Subscriber:
    phone: str
    language: str
    subscription_id: int


_ALERTS = AlertRecord.__table__
_SUBS = Subscription.__table__
_INSERT_SUB = {"postgresql": postgresql.insert(_SUBS).on_conflict_do_nothing(),
               "sqlite": sqlite.insert(_SUBS).on_conflict_do_nothing()}
_ACTIVE = (select(_ALERTS).where(_ALERTS.c.ended_at.is_(None), _ALERTS.c.created_at <= bindparam("b_now"),
                                 or_(_ALERTS.c.until.is_(None), _ALERTS.c.until > bindparam("b_now")))
           .order_by(_ALERTS.c.created_at.desc(), _ALERTS.c.id.desc()))


#: Alerts not ended and not expired at `b_now` (a few at most): what `active_alert_for` keeps.
_NOT_OVER = (select(_ALERTS).where(_ALERTS.c.ended_at.is_(None),
                                   or_(_ALERTS.c.until.is_(None), _ALERTS.c.until > bindparam("b_now")))
             .order_by(_ALERTS.c.created_at.desc(), _ALERTS.c.id.desc()))
#: How long a process answers `active_alert_for` from the alerts it last read. Most callers ask
#: (at the question and the menu), so this saves a query per caller; an alert sent or ended by
#: another process (`ivr alerts send`, the other worker) reaches this one's callers within it,
#: one sent or ended through this engine at once. The heard counters of a kept alert may lag.
ACTIVE_ALERTS_TTL_S = 1.0
_clock = time.monotonic   # tests move it instead of waiting


class _Kept:
    """Per engine: (good until, the `now` they were read for, the alerts), and a generation that
    a local change bumps, so a read that raced the change is not kept."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: weakref.WeakKeyDictionary[Engine, tuple[float, datetime, list[Alert]]] = \
            weakref.WeakKeyDictionary()
        self.generation = 0

    def get(self, engine: Engine, now: datetime) -> list[Alert] | None:
        entry = self.entries.get(engine)
        # Read again for a `now` earlier than the read's (a test clock going back): an alert that
        # had expired then may be active now.
        if entry is None or _clock() >= entry[0] or now < entry[1]:
            return None
        return entry[2]

    def put(self, engine: Engine, now: datetime, found: list[Alert], generation: int) -> None:
        with self.lock:
            if generation == self.generation:
                self.entries[engine] = (_clock() + ACTIVE_ALERTS_TTL_S, now, found)

    def forget(self, engine: Engine) -> None:
        with self.lock:
            self.generation += 1
            self.entries.pop(engine, None)


_KEPT = _Kept()


def _alert(row: Any) -> Alert:
    return Alert(id=row.id, topic=row.topic, intents=tuple(row.intents or ()), message=dict(row.message or {}),
                 created_by=row.created_by, created_at=row.created_at, until=row.until, ended_at=row.ended_at,
                 recipients=row.recipients, heard={"voice": row.heard_voice, "sms": row.heard_sms})


def create_alert(s: Session, *, topic: str, intents: tuple[str, ...] | list[str], message: Mapping[str, str],
                 created_by: str, until: datetime | None = None, now: datetime | None = None) -> Alert:
    """Add an alert (active from `now`); returns it with its id."""
    if not message or not any(text.strip() for text in message.values()):
        raise ValueError("an alert needs a message")
    now = now or utcnow()
    if until is not None and until <= now:
        raise ValueError("the alert would end before it starts: give a later --until")
    values = {"topic": topic[:MAX_TOPIC], "intents": list(intents), "message": dict(message),
              "created_by": created_by[:128], "created_at": now, "until": until, "recipients": 0,
              "heard_voice": 0, "heard_sms": 0}
    new_id = s.connection().execute(_ALERTS.insert().values(**values).returning(_ALERTS.c.id)).scalar_one()
    _KEPT.forget(s.get_bind())
    return _alert(s.connection().execute(select(_ALERTS).where(_ALERTS.c.id == new_id)).one())


def get_alert(s: Session, alert_id: int) -> Alert | None:
    row = s.connection().execute(select(_ALERTS).where(_ALERTS.c.id == alert_id)).first()
    return _alert(row) if row is not None else None


def active_alerts(s: Session, now: datetime) -> list[Alert]:
    """Every alert active at `now`, newest first."""
    return [_alert(row) for row in s.connection().execute(_ACTIVE, {"b_now": now})]


def active_alert_for(s: Session, *, intent: str | None, topic: str | None, now: datetime) -> Alert | None:
    """The newest alert active at `now` on `topic`, or covering `intent`; None if there is none.

    Answered from the alerts this process read less than ACTIVE_ALERTS_TTL_S ago (see there)."""
    if not intent and not topic:
        return None
    engine = s.get_bind()
    kept = _KEPT.get(engine, now)
    if kept is None:
        generation = _KEPT.generation
        kept = [_alert(row) for row in s.connection().execute(_NOT_OVER, {"b_now": now})]
        _KEPT.put(engine, now, kept, generation)
    for alert in kept:   # a handful at most: filtered here, not in JSON SQL
        if alert.active(now) and ((topic and alert.topic == topic) or (intent and intent in alert.intents)):
            return alert
    return None


def count_alert_heard(s: Session, alert_id: int, channel: str) -> None:
    """One more caller (channel "voice") or texter ("sms") was told about the alert."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}: one of {', '.join(CHANNELS)}")
    column = _ALERTS.c[f"heard_{channel}"]
    s.connection().execute(update(_ALERTS).where(_ALERTS.c.id == alert_id).values({column: column + 1}))


def end_alert(s: Session, alert_id: int, *, by: str, now: datetime | None = None) -> Alert | None:
    """End an alert now (callers stop hearing it); None if there is no such alert."""
    now = now or utcnow()
    s.connection().execute(update(_ALERTS).where(_ALERTS.c.id == alert_id, _ALERTS.c.ended_at.is_(None))
                           .values(ended_at=now, ended_by=by[:128]))
    _KEPT.forget(s.get_bind())
    return get_alert(s, alert_id)


def add_recipients(s: Session, alert_id: int, count: int) -> None:
    """`count` more subscriber texts were queued for the alert."""
    s.connection().execute(update(_ALERTS).where(_ALERTS.c.id == alert_id)
                           .values(recipients=_ALERTS.c.recipients + count))


def list_alerts(s: Session, *, limit: int = 50, active_at: datetime | None = None) -> list[Alert]:
    """The newest alerts first (only those active at `active_at` when given)."""
    if active_at is not None:
        return active_alerts(s, active_at)[:limit]
    stmt = select(_ALERTS).order_by(_ALERTS.c.created_at.desc(), _ALERTS.c.id.desc()).limit(limit)
    return [_alert(row) for row in s.connection().execute(stmt)]


def subscribe(s: Session, *, phone: str, topic: str, language: str, channel: str) -> bool:
    """Subscribe `phone` to `topic`; False when it already was (its language is updated)."""
    phone = normalise_phone(phone)
    conn = s.connection()
    inserted = conn.execute(_INSERT_SUB[conn.dialect.name], {
        "phone": phone, "topic": topic[:MAX_TOPIC], "language": language, "channel": channel[:16],
        "created_at": utcnow()}).rowcount
    if not inserted:
        conn.execute(update(_SUBS).where(_SUBS.c.phone == phone, _SUBS.c.topic == topic).values(language=language))
    return bool(inserted)


def unsubscribe(s: Session, *, phone: str, topic: str | None = None) -> int:
    """Remove `phone` from `topic` (from every topic when None); how many subscriptions ended."""
    condition = _SUBS.c.phone == normalise_phone(phone)
    if topic is not None:
        condition = and_(condition, _SUBS.c.topic == topic)
    return int(s.connection().execute(delete(_SUBS).where(condition)).rowcount)


def topics_of(s: Session, phone: str) -> list[str]:
    """The topics this number is subscribed to."""
    stmt = select(_SUBS.c.topic).where(_SUBS.c.phone == normalise_phone(phone)).order_by(_SUBS.c.topic)
    return list(s.connection().execute(stmt).scalars())


def subscribers(s: Session, topic: str) -> list[Subscriber]:
    """Everyone subscribed to `topic`, in subscription order (opted-out numbers included: the
    outbox drops them at send time, so a START before delivery still gets the alert)."""
    stmt = select(_SUBS.c.phone, _SUBS.c.language, _SUBS.c.id).where(_SUBS.c.topic == topic).order_by(_SUBS.c.id)
    return [Subscriber(row.phone, row.language, row.id) for row in s.connection().execute(stmt)]


def subscriber_counts(s: Session) -> dict[str, int]:
    """Topic → number of subscribers."""
    stmt = select(_SUBS.c.topic, func.count()).group_by(_SUBS.c.topic)
    return {topic: int(count) for topic, count in s.connection().execute(stmt)}
