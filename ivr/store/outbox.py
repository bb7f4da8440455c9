"""The outbox table: messages the city must send (texts, e-mails, webhooks, Open311 posts).

A row is written in the transaction of whatever decided to send it (a webhook, a CLI command),
so a rolled-back webhook sends nothing and a committed one is never forgotten. Workers then
*claim* due rows, deliver them, and mark the outcome.

Status of a row::

    pending ──claim──▶ sending ──▶ sent
       ▲                  │  └───▶ failed ──(next_attempt_at)──claim──▶ sending …
       │                  └──────▶ dead  (permanent error, or too many attempts)
       └──── ivr outbox retry ◀────┘

Claiming is one conditional UPDATE per batch: only rows that are due (pending/failed with
next_attempt_at ≤ now) or whose lease has run out (sending, lease_until < now: the worker that
claimed them died) are taken, and the UPDATE … RETURNING says which rows *this* worker got. On
PostgreSQL the candidates are picked with FOR UPDATE SKIP LOCKED, so concurrent workers take
different rows instead of queueing behind each other; on SQLite the single writer serialises the
UPDATEs, and the WHERE clause is evaluated again inside each one, so two workers never hold the
same row. Marking the outcome is conditional on still holding the claim (status sending,
claimed_by me), so a worker whose lease ran out cannot overwrite the row's newer owner.

Delivery is therefore *at least once*: a worker that dies after the provider accepted a message
and before it marked the row sent leaves it to be sent again when the lease runs out
(IVR_OUTBOX_LEASE_S, default 300 s, far longer than any send's timeout). Webhooks carry an
Idempotency-Key and e-mails a Message-ID derived from the row's key, so receivers can drop that
rare repeat; for texts it is a duplicate SMS — documented in docs/channels.md.

Writes are SQLAlchemy Core on the caller's session connection (no commit here), like calls.py.
"""
from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any, Iterable

from sqlalchemy import JSON, Index, Integer, String, Text, and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from ivr.store.models import Base, UTCDateTime, utcnow

KINDS = ("sms", "email", "webhook", "open311")
STATUSES = ("pending", "sending", "sent", "failed", "dead")
MAX_KEY = 200


class OutboxMessage(Base):
    """One message to deliver, with its delivery state."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Idempotency: the same key enqueued twice (a Twilio retry of the webhook) is one message.
    key: Mapped[str] = mapped_column(String(MAX_KEY), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(512))        # phone, e-mail address, URL
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(128), default=None)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    provider_id: Mapped[str | None] = mapped_column(String(128), default=None, index=True)   # Twilio's SM…
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # What the provider said later (Twilio's StatusCallback: sent, delivered, undelivered, failed).
    delivery_status: Mapped[str | None] = mapped_column(String(16), default=None)
    delivery_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


@dataclasses.dataclass(frozen=True)
class Row:
    """A read-only copy of an outbox row (what workers, the CLI and tests see)."""
    id: int
    key: str
    kind: str
    target: str
    payload: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: datetime
    claimed_by: str | None
    lease_until: datetime | None
    provider_id: str | None
    last_error: str
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    delivery_status: str | None = None
    delivery_updated_at: datetime | None = None


_T = OutboxMessage.__table__
_FIELDS = [f.name for f in dataclasses.fields(Row)]
_COLUMNS = [_T.c[name] for name in _FIELDS]
_INSERT = {"postgresql": postgresql.insert(_T).on_conflict_do_nothing(index_elements=["key"]),
           "sqlite": sqlite.insert(_T).on_conflict_do_nothing(index_elements=["key"])}


def _row(mapping: Any) -> Row:
    return Row(**{name: mapping[name] for name in _FIELDS})


def _writer(s: Session) -> Any:
    s.info["wrote"] = True   # db's teardown warns about uncommitted writes
    return s.connection()


def insert(s: Session, *, key: str, kind: str, target: str, payload: dict[str, Any],
           not_before: datetime | None = None, now: datetime | None = None) -> bool:
    """Add one pending row in the caller's transaction; False if `key` was already there."""
    if kind not in KINDS:
        raise ValueError(f"outbox kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if not key or len(key) > MAX_KEY:
        raise ValueError(f"outbox key must be 1 to {MAX_KEY} characters, got {key[:40]!r}")
    now = now or utcnow()
    conn = _writer(s)
    values = {"key": key, "kind": kind, "target": target, "payload": payload, "status": "pending",
              "attempts": 0, "next_attempt_at": not_before or now, "last_error": "",
              "created_at": now, "updated_at": now}
    return bool(conn.execute(_INSERT[conn.dialect.name], values).rowcount)


def _claimable(now: datetime) -> Any:
    return or_(and_(_T.c.status.in_(("pending", "failed")), _T.c.next_attempt_at <= now),
               and_(_T.c.status == "sending", _T.c.lease_until < now))


def claim(s: Session, worker: str, *, limit: int, lease_s: float, now: datetime | None = None,
          kinds: Iterable[str] | None = None) -> list[Row]:
    """Take up to `limit` due rows for `worker` (status sending, leased `lease_s` seconds).

    The caller commits right away: the claim must be visible to other workers before sending.
    """
    now = now or utcnow()
    conn = _writer(s)
    due = _claimable(now)
    if kinds is not None:
        due = and_(due, _T.c.kind.in_(tuple(kinds)))
    candidates = select(_T.c.id).where(due).order_by(_T.c.next_attempt_at, _T.c.id).limit(limit)
    if conn.dialect.name == "postgresql":
        # A CTE, not IN (subquery): PostgreSQL may rescan an IN subquery in a join, and each
        # rescan of a LIMIT … FOR UPDATE SKIP LOCKED picks other rows (measured: 10 for LIMIT 6).
        # A locking CTE is run once.
        picked = candidates.with_for_update(skip_locked=True).cte("picked")
        chosen = _T.c.id == picked.c.id
    else:
        chosen = _T.c.id.in_(candidates.scalar_subquery())
    # The WHERE repeats `due`: inside the UPDATE it is checked again against the row as it is
    # now, so a row another worker claimed in between is not taken twice.
    statement = (update(_T).where(chosen, due)
                 .values(status="sending", claimed_by=worker, lease_until=now + timedelta(seconds=lease_s),
                         attempts=_T.c.attempts + 1, updated_at=now)
                 .returning(*_COLUMNS))
    rows = [_row(r._mapping) for r in conn.execute(statement)]
    rows.sort(key=lambda r: (r.next_attempt_at, r.id))
    return rows


def _settle(s: Session, row_id: int, worker: str, values: dict[str, Any]) -> bool:
    """Apply `values` to a row this worker still holds; False if it lost the claim (lease ran out)."""
    statement = (update(_T).where(_T.c.id == row_id, _T.c.status == "sending", _T.c.claimed_by == worker)
                 .values(lease_until=None, **values))
    return bool(_writer(s).execute(statement).rowcount)


def mark_sent(s: Session, row_id: int, worker: str, provider_id: str | None, now: datetime | None = None) -> bool:
    now = now or utcnow()
    return _settle(s, row_id, worker, {"status": "sent", "provider_id": provider_id, "sent_at": now,
                                       "updated_at": now, "last_error": ""})


def mark_failed(s: Session, row_id: int, worker: str, error: str, retry_at: datetime,
                now: datetime | None = None) -> bool:
    """A transient failure: try again at `retry_at`."""
    return _settle(s, row_id, worker, {"status": "failed", "last_error": error[:2000],
                                       "next_attempt_at": retry_at, "updated_at": now or utcnow()})


def mark_dead(s: Session, row_id: int, worker: str, error: str, now: datetime | None = None) -> bool:
    """Given up: a permanent error, or the last attempt failed. `ivr outbox retry` revives it."""
    return _settle(s, row_id, worker, {"status": "dead", "last_error": error[:2000],
                                       "updated_at": now or utcnow()})


def retry(s: Session, *, ids: Iterable[int] | None = None, now: datetime | None = None) -> int:
    """Dead rows (all, or those in `ids`) back to pending with a fresh attempt count."""
    now = now or utcnow()
    where = _T.c.status == "dead"
    if ids is not None:
        where = and_(where, _T.c.id.in_(tuple(ids)))
    statement = update(_T).where(where).values(status="pending", attempts=0, next_attempt_at=now,
                                               claimed_by=None, lease_until=None, updated_at=now)
    return _writer(s).execute(statement).rowcount


#: Twilio's message statuses that do not change any more; a late callback cannot undo them.
FINAL_DELIVERY = ("delivered", "undelivered", "failed", "read", "canceled")


def record_delivery(s: Session, provider_id: str, status: str, error: str = "", now: datetime | None = None) -> bool:
    """The provider's later word on a sent message (Twilio StatusCallback); False if unknown.

    Callbacks may arrive out of order (`sent` after `delivered`): a final status is kept.
    """
    now = now or utcnow()
    values: dict[str, Any] = {"delivery_status": status[:16], "delivery_updated_at": now, "updated_at": now}
    if error:
        values["last_error"] = error[:2000]
    statement = (update(_T).where(_T.c.provider_id == provider_id,
                                  or_(_T.c.delivery_status.is_(None), _T.c.delivery_status.not_in(FINAL_DELIVERY)))
                 .values(**values))
    if _writer(s).execute(statement).rowcount:
        return True
    return s.connection().execute(select(_T.c.id).where(_T.c.provider_id == provider_id)).first() is not None


def next_due(s: Session) -> datetime | None:
    """When the earliest row waiting its turn (pending or failed) becomes due; None if none waits."""
    found = s.connection().execute(select(func.min(_T.c.next_attempt_at))
                                   .where(_T.c.status.in_(("pending", "failed")))).scalar()
    return _as_time(found)


def get(s: Session, row_id: int) -> Row | None:
    found = s.connection().execute(select(*_COLUMNS).where(_T.c.id == row_id)).first()
    return _row(found._mapping) if found else None


def by_key(s: Session, key: str) -> Row | None:
    found = s.connection().execute(select(*_COLUMNS).where(_T.c.key == key)).first()
    return _row(found._mapping) if found else None


def search(s: Session, *, status: str | None = None, kind: str | None = None, since: datetime | None = None,
           limit: int = 100) -> list[Row]:
    """Newest first."""
    query = select(*_COLUMNS).order_by(_T.c.id.desc()).limit(limit)
    if status:
        query = query.where(_T.c.status == status)
    if kind:
        query = query.where(_T.c.kind == kind)
    if since:
        query = query.where(_T.c.created_at >= since)
    return [_row(r._mapping) for r in s.connection().execute(query)]


@dataclasses.dataclass(frozen=True)
class Stats:
    counts: dict[tuple[str, str], int]      # (kind, status) → rows
    oldest_waiting: datetime | None         # created_at of the oldest row not yet sent or dead
    next_due: datetime | None               # earliest next_attempt_at among waiting rows

    def by_status(self) -> dict[str, int]:
        totals = dict.fromkeys(STATUSES, 0)
        for (_kind, status), n in self.counts.items():
            totals[status] = totals.get(status, 0) + n
        return totals

    @property
    def waiting(self) -> int:
        totals = self.by_status()
        return totals["pending"] + totals["sending"] + totals["failed"]


def stats(s: Session) -> Stats:
    conn = s.connection()
    counts = {(kind, status): n for kind, status, n in
              conn.execute(select(_T.c.kind, _T.c.status, func.count()).group_by(_T.c.kind, _T.c.status))}
    waiting = _T.c.status.in_(("pending", "sending", "failed"))
    oldest, next_due = conn.execute(select(func.min(_T.c.created_at), func.min(_T.c.next_attempt_at))
                                    .where(waiting)).one()
    # func.min loses the column type on SQLite (a string comes back): convert like the column does.
    return Stats(counts, _as_time(oldest), _as_time(next_due))


def _as_time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return UTCDateTime().process_result_value(value, None)  # type: ignore[arg-type]
    return UTCDateTime().process_result_value(datetime.fromisoformat(str(value)), None)  # type: ignore[arg-type]
