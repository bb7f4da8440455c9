"""What retention removes from the call database, kind by kind: counted, or removed.

Kinds (each with its own age limit, see ivr.jobs.retention for the defaults):

- ``transcripts``: what callers said (turns' heard text and its classification, the call's
  remembered words and the last question asked, a parked media-stream turn). Turns,
  decisions and outcomes stay, so the line's statistics survive.
- ``recordings``: recording references (rows, and voicemail messages' URLs).
- ``numbers``: callers' numbers, replaced by a salted hash (``hash:…``): repeat callers stay
  recognisable, the number is gone. Closed service requests lose their contact the same way (the
  phone hashed, the e-mail removed), counted from their last change; open ones keep it, since
  the department may still need to reach the citizen.
- ``replies``: stored webhook answers (kept only to replay Twilio retries).

A call's age is counted from its end (or its last update when Twilio never told us it ended),
and a call still in progress is never touched. Every step is idempotent — a second run, or
another worker running at the same moment, finds nothing left to do — and works in small
batches so a webhook never waits long for the database.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

from sqlalchemy import (Connection, String, Text, and_, cast, delete, exists, func, null, or_, select, text,
                        update)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from ivr.store.models import Base, Call, IdempotentResponse, Message, Recording, Turn
from ivr.store.service_requests import ServiceRequestRow

KINDS = ("transcripts", "recordings", "numbers", "replies")
#: A call not updated for this long, with no end status, is over (Twilio's longest call is 24 h).
IN_PROGRESS_WINDOW = timedelta(hours=24)
BATCH = 500
HASH_PREFIX = "hash:"
#: PostgreSQL advisory lock key meaning "retention is running" (the migration lock is 3110311).
PG_LOCK_KEY = 3110312
_PHONE = re.compile(r"^\+?[\d\s().-]{7,}$")


class Secret(Base):
    """Secrets the app makes for itself and every instance must share (the number-hash salt)."""

    __tablename__ = "app_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))


@dataclass(frozen=True)
class Cutoffs:
    """Per kind: anything that ended before this time goes (None: kept forever)."""
    now: datetime
    transcripts: datetime | None
    recordings: datetime | None
    numbers: datetime | None
    replies: datetime | None

    @classmethod
    def from_days(cls, now: datetime, **days: float) -> "Cutoffs":
        """Cutoffs `days[kind]` days before `now`; 0 or less keeps that kind forever."""
        return cls(now=now, **{kind: (now - timedelta(days=days[kind]) if days.get(kind, 0) > 0 else None)
                               for kind in KINDS})


def _call_over_before(cutoff: datetime, now: datetime) -> Any:
    """Calls that are over and whose last activity is older than `cutoff`."""
    last = func.coalesce(Call.ended_at, Call.updated_at)
    over = or_(Call.ended_at.is_not(None), Call.updated_at < now - IN_PROGRESS_WINDOW)
    # started_at < cutoff is implied by the rest; it lets the database use started_at's index.
    return and_(Call.started_at < cutoff, last < cutoff, over)


def _in_progress(now: datetime) -> Any:
    return and_(Call.ended_at.is_(None), Call.updated_at >= now - IN_PROGRESS_WINDOW)


# --- what would go --------------------------------------------------------------------------------

def _transcript_calls(cutoff: datetime, now: datetime) -> Any:
    has_words = exists().where(Turn.call_sid == Call.sid, Turn.heard.is_not(None))
    # JSON columns hold None as JSON 'null' (SQLAlchemy's default), so compare the text.
    parked = and_(Call.pending_turn.is_not(None), cast(Call.pending_turn, Text) != "null")
    return select(Call.sid).where(_call_over_before(cutoff, now), or_(has_words, parked))


def _recording_rows(cutoff: datetime, now: datetime) -> tuple[Any, Any]:
    old_calls = select(Call.sid).where(_call_over_before(cutoff, now))
    recordings = select(Recording.id).where(Recording.call_sid.in_(old_calls))
    messages = select(Message.id).where(Message.call_sid.in_(old_calls), Message.recording_url.is_not(None))
    return recordings, messages


def _number_calls(cutoff: datetime, now: datetime) -> Any:
    return select(Call.sid).where(_call_over_before(cutoff, now), Call.from_number != "",
                                  ~Call.from_number.startswith(HASH_PREFIX))


def _number_requests(cutoff: datetime) -> Any:
    """Closed service requests, last changed before `cutoff`, that still hold a contact."""
    row = ServiceRequestRow
    unhashed = and_(row.contact_phone.is_not(None), ~row.contact_phone.startswith(HASH_PREFIX))
    return select(row.id).where(row.status == "closed", row.updated_at < cutoff,
                                or_(unhashed, row.contact_email.is_not(None)))


def _reply_keys(s: Session, cutoff: datetime, now: datetime) -> Any:
    # A reply of a call still in progress stays (its key starts with the CallSid). The calls in
    # progress are few, so they are read first: a correlated NOT EXISTS with LIKE made this
    # quadratic in the number of stored replies (measured: 50 s for 10,000 on SQLite).
    live = list(s.scalars(select(Call.sid).where(_in_progress(now))))
    old = IdempotentResponse.created_at < cutoff
    keep = [IdempotentResponse.key.startswith(f"{sid}:", autoescape=True) for sid in live]
    return select(IdempotentResponse.key).where(old, ~or_(*keep)) if keep else \
        select(IdempotentResponse.key).where(old)


def _count(s: Session, stmt: Any) -> int:
    return int(s.scalar(select(func.count()).select_from(stmt.subquery())) or 0)


def count(s: Session, cutoffs: Cutoffs) -> dict[str, int]:
    """How many items of each kind retention would remove now (0 for kinds kept forever)."""
    now, counts = cutoffs.now, {kind: 0 for kind in KINDS}
    if cutoffs.transcripts:
        counts["transcripts"] = _count(s, _transcript_calls(cutoffs.transcripts, now))
    if cutoffs.recordings:
        recordings, messages = _recording_rows(cutoffs.recordings, now)
        counts["recordings"] = _count(s, recordings) + _count(s, messages)
    if cutoffs.numbers:
        counts["numbers"] = _count(s, _number_calls(cutoffs.numbers, now)) + \
            _count(s, _number_requests(cutoffs.numbers))
    if cutoffs.replies:
        counts["replies"] = _count(s, _reply_keys(s, cutoffs.replies, now))
    return counts


# --- removing it ----------------------------------------------------------------------------------

def prune(s: Session, cutoffs: Cutoffs, salt: str,
          delete_audio: Callable[[str], bool | None] | None = None) -> dict[str, int]:
    """Remove what `count` counts, committing after each batch; returns what was removed.

    `delete_audio(url)` deletes a recording's audio where it is kept (Twilio): True gone, None
    not ours to delete (only the reference goes), False not now — that reference stays for the
    next run, so audio is never orphaned by forgetting where it is.
    """
    now, done = cutoffs.now, {kind: 0 for kind in KINDS}
    if cutoffs.transcripts:
        done["transcripts"] = _batched(s, _transcript_calls(cutoffs.transcripts, now), _forget_words)
    if cutoffs.recordings:
        recordings, messages = _recording_rows(cutoffs.recordings, now)
        done["recordings"] = _prune_recordings(s, recordings, delete_audio) + \
            _batched(s, messages, lambda s, ids: _update(s, Message, Message.id, ids, recording_url=None))
    if cutoffs.numbers:
        done["numbers"] = _batched(s, _number_calls(cutoffs.numbers, now),
                                   lambda s, sids: _hash_numbers(s, sids, salt)) + \
            _batched(s, _number_requests(cutoffs.numbers), lambda s, ids: _forget_contacts(s, ids, salt))
    if cutoffs.replies:
        done["replies"] = _batched(s, _reply_keys(s, cutoffs.replies, now),
                                   lambda s, keys: _delete(s, IdempotentResponse, IdempotentResponse.key, keys))
    return done


def _prune_recordings(s: Session, ids_stmt: Any, delete_audio: Callable[[str], bool | None] | None) -> int:
    removed, after = 0, 0
    while True:     # by id, so a recording whose audio could not be deleted now is passed over
        rows = s.execute(select(Recording.id, Recording.url).where(Recording.id.in_(ids_stmt), Recording.id > after)
                         .order_by(Recording.id).limit(BATCH)).all()
        if not rows:
            return removed
        after = rows[-1].id
        gone = [row.id for row in rows if delete_audio is None or delete_audio(row.url) is not False]
        removed += _delete(s, Recording, Recording.id, gone)
        s.commit()


def _batched(s: Session, ids_stmt: Any, step: Any) -> int:
    total = 0
    while True:
        ids = list(s.scalars(ids_stmt.limit(BATCH)))
        if not ids:
            return total
        total += step(s, ids)
        s.commit()
        if len(ids) < BATCH:
            return total


def _delete(s: Session, model: Any, key: Any, ids: list[Any]) -> int:
    return int(s.execute(delete(model).where(key.in_(ids)))  # type: ignore[attr-defined]
               .rowcount)


def _update(s: Session, model: Any, key: Any, ids: list[Any], **values: Any) -> int:
    return int(s.execute(update(model).where(key.in_(ids)).values(**values))  # type: ignore[attr-defined]
               .rowcount)


def _forget_words(s: Session, sids: list[str]) -> int:
    s.execute(update(Turn).where(Turn.call_sid.in_(sids)).values(heard=None, classification=null()))
    for sid, state in s.execute(select(Call.sid, Call.state).where(Call.sid.in_(sids))).all():
        state = {**(state or {}), "heard": "", "prompt": ""} if state else state
        _update_call(s, sid, state=state, pending_turn=null())
    return len(sids)


def _hash_numbers(s: Session, sids: list[str], salt: str) -> int:
    for sid, number in s.execute(select(Call.sid, Call.from_number).where(Call.sid.in_(sids))).all():
        _update_call(s, sid, from_number=hash_number(number, salt))
    return len(sids)


def _forget_contacts(s: Session, ids: list[int], salt: str) -> int:
    row = ServiceRequestRow
    for request_id, phone in s.execute(select(row.id, row.contact_phone).where(row.id.in_(ids))).all():
        hashed = phone if phone is None or phone.startswith(HASH_PREFIX) else hash_number(phone, salt)
        # updated_at keeps its value, as for calls: forgetting is not a change of the request.
        s.execute(update(row).where(row.id == request_id)
                  .values(contact_phone=hashed, contact_email=None, updated_at=row.updated_at))
    return len(ids)


def _update_call(s: Session, sid: str, **values: Any) -> None:
    # updated_at keeps its value: forgetting is not activity, and the call's age must not restart.
    s.execute(update(Call).where(Call.sid == sid).values(updated_at=Call.updated_at, **values))


def hash_number(number: str, salt: str) -> str:
    """``hash:`` + 16 hex digits of HMAC-SHA256(salt, number's digits): the same number always
    gives the same hash (repeat callers stay countable) and it cannot be dialled or looked up
    without the salt. Placeholders (anonymous, client:…) are hashed as they are."""
    text = number.strip()
    normal = ("+" if text.startswith("+") else "") + re.sub(r"\D", "", text) if _PHONE.match(text) else text
    digest = hmac.new(salt.encode(), normal.encode(), hashlib.sha256).hexdigest()
    return HASH_PREFIX + digest[:16]


def number_salt(s: Session) -> str:
    """The database's number-hash salt, made on first use and shared by every instance.

    IVR_NUMBER_HASH_SALT, when set, is used instead (see ivr.jobs.retention).
    """
    found = s.get(Secret, "number_salt")
    if found is None:
        dialect = s.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        # Two instances making it at once: the first insert wins and both read it back.
        s.execute(insert(Secret).values(name="number_salt", value=secrets.token_hex(32)).on_conflict_do_nothing())
        s.commit()
        found = s.get(Secret, "number_salt", populate_existing=True)
    assert found is not None
    return found.value


def try_lock(conn: Connection) -> bool:
    """Take the retention lock on `conn`, if no other instance holds it (commits `conn`).

    PostgreSQL: a session-level advisory lock, so hold it on one connection for the whole run
    (``Session(bind=conn)``). SQLite has one writer at a time anyway and every step is
    idempotent, so there is nothing to take.
    """
    if conn.dialect.name != "postgresql":
        return True
    # Keyed by schema too: advisory locks are server-wide, and one server may hold several lines'
    # (or test) schemas that must not wait for each other.
    taken = bool(conn.execute(text("SELECT pg_try_advisory_lock(:key, hashtext(current_schema()))"),
                              {"key": PG_LOCK_KEY}).scalar())
    conn.commit()
    return taken


def unlock(conn: Connection) -> None:
    """Release `try_lock`'s lock."""
    if conn.dialect.name == "postgresql":
        conn.rollback()
        conn.execute(text("SELECT pg_advisory_unlock(:key, hashtext(current_schema()))"), {"key": PG_LOCK_KEY})
        conn.commit()
