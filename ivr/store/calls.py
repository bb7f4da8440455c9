"""What the voice edges read and write about a call: its state, turns, events, outcome, messages.

Every function takes the request's Session (``db.session()``) first and the CallSid second.
Writers add to the session and do not commit — the webhook commits once, before it answers
(see ``db``) — through ``replies.remember_response``, which stores the answer and the
webhook's effects together.

Writers for a CallSid we have not seen (a status callback racing ``/voice/incoming``)
create the call row rather than fail: a webhook must always be able to answer.
"""
from __future__ import annotations

import functools
import re
from typing import Any, Mapping, Sequence

from sqlalchemy import String, bindparam, case, cast, func, literal, null, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.orm import Session

from ivr.routing.state import CallState, Turn
from ivr.store import models, write
from ivr.store.pipeline import DEFER
from ivr.store.convert import dumps, state_from_dict, state_to_dict, turn_from_dict
from ivr.store.replies import RESPONSES, stored_key
from ivr.store.direct import PreparedRead
from ivr.store.write import Prepared

MAX_SID = 64
ENDED_STATUSES = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})


def _check_sid(sid: str) -> str:
    if not isinstance(sid, str) or not sid.strip():
        raise ValueError(f"CallSid must be a non-empty string, got {sid!r}")
    if len(sid) > MAX_SID:
        raise ValueError(f"CallSid longer than {MAX_SID} characters: {sid[:20]!r}…")
    return sid.strip()


def ensure_call(s: Session, sid: str, from_: str, to: str) -> None:
    """The call `sid` exists after this: one INSERT for a new call (a repeat — a Twilio retry, a
    status callback racing /voice/incoming, another worker — is harmless); an existing call's
    numbers are filled in only where they are still empty."""
    sid = _check_sid(sid)
    conn = _writer(s)
    inserted = conn.execute(_INSERT_CALL[conn.dialect.name], {
        "sid": sid, "from_number": from_ or "", "to_number": to or "", "state": {},
        "outcome_detail": {}}).rowcount
    for column, value in (("from_number", from_), ("to_number", to)):
        if value and not inserted:
            conn.execute(update(_CALLS).where(_CALLS.c.sid == sid, _CALLS.c[column] == "").values({column: value}))
    _known(s).add(sid)


def start_call(s: Session, sid: str, from_: str, to: str, state: CallState) -> None:
    """A call's first webhook: `ensure_call` and `save_state` in one statement (an upsert whose
    answer nobody needs, so it waits in the PostgreSQL pipeline). A repeat (a Twilio retry, a
    status callback that created the row first) fills in only the numbers still empty, and
    stores `state`."""
    if not isinstance(state, CallState):
        raise TypeError(f"start_call needs a CallState, got {type(state).__name__}")
    sid = _check_sid(sid)
    conn = _writer(s)
    now = models.utcnow()
    _write_json(conn, _START_CALL[conn.dialect.name], {
        "sid": sid, "from_number": from_ or "", "to_number": to or "", "language": state.language,
        "state": state_to_dict(state), "outcome_detail": {}, "started_at": now, "updated_at": now})
    _known(s).add(sid)


# One write path: every write is a Core statement on the session's connection, in its
# transaction (measured on SQLite: ~1 ms less CPU per webhook than ORM get + flush). Calls seen in
# this transaction are remembered in `s.info`, so a writer knows the row exists (the foreign keys
# need it) without asking the database again. On PostgreSQL the writes are DEFERred: they travel
# with the webhook's next statement (pipeline).
_CALLS = models.Call.__table__
_INSERT_CALL = {"postgresql": postgresql.insert(_CALLS).on_conflict_do_nothing(),
                "sqlite": sqlite.insert(_CALLS).on_conflict_do_nothing()}


def _start_call(insert: Any) -> Any:
    statement = insert(_CALLS)
    new, old = statement.excluded, _CALLS.c
    return statement.on_conflict_do_update(index_elements=[old.sid], set_={
        "from_number": case((old.from_number == "", new.from_number), else_=old.from_number),
        "to_number": case((old.to_number == "", new.to_number), else_=old.to_number),
        "state": new.state, "language": new.language, "updated_at": new.updated_at})


#: Prepared (write.Prepared): compiled once per engine, as are the other hot writes below.
_START_CALL = {"postgresql": Prepared(_start_call(postgresql.insert)), "sqlite": Prepared(_start_call(sqlite.insert))}
_LOAD_STATE = PreparedRead(select(_CALLS.c.state).where(_CALLS.c.sid == bindparam("b_sid")))
# inline(): no RETURNING of the new id (nobody reads it), so the INSERT can be deferred (pipeline).
_INSERT_TURN = Prepared(models.Turn.__table__.insert().inline())
_INSERT_EVENT = Prepared(models.Event.__table__.insert().inline())
_INSERT_RECORDING = models.Recording.__table__.insert().inline()
_INSERT_MESSAGE = models.Message.__table__.insert().inline()
_PENDING = PreparedRead(select(_CALLS.c.pending_turn).where(_CALLS.c.sid == bindparam("b_sid")))
_PUT_PENDING = Prepared(update(_CALLS).where(_CALLS.c.sid == bindparam("b_sid")).values(
    pending_turn=bindparam("b_turn"), updated_at=bindparam("b_updated_at")))
_CALLER = PreparedRead(select(_CALLS.c.from_number).where(_CALLS.c.sid == bindparam("b_sid")))
_STATE_AND_CALLER = PreparedRead(select(_CALLS.c.state, _CALLS.c.from_number).where(_CALLS.c.sid == bindparam("b_sid")))
#: An outcome to record: its name and details (e.g. ``("queued", {"department": "roads"})``).
Outcome = tuple[str, Mapping[str, Any]]
KNOWN_CALLS = "ivr.store.known_calls"   # s.info key; emptied on rollback (see db.init_app)


def _known(s: Session) -> set[str]:
    known: set[str] | None = s.info.get(KNOWN_CALLS)
    if known is None:
        known = s.info[KNOWN_CALLS] = set()
    return known


def _writer(s: Session) -> Any:
    """The session's connection for a Core write, flagged as written (teardown warns if uncommitted)."""
    return write.connection(s)


def _existing_sid(s: Session, sid: str) -> str:
    """`sid` checked, its row created if this transaction has not seen it yet."""
    sid = _check_sid(sid)
    if sid not in _known(s):
        ensure_call(s, sid, "", "")
    return sid


def load_state(s: Session, sid: str) -> CallState | None:
    """The conversation state of call `sid`, or None if the call is unknown."""
    sid = _check_sid(sid)
    row = _LOAD_STATE.first(s.connection(), {"b_sid": sid})
    if row is None:
        return None
    _known(s).add(sid)
    return state_from_dict(row[0])


def state_and_caller(s: Session, sid: str) -> tuple[CallState | None, str]:
    """`load_state` and `caller_number` in one read: (None, "") for an unknown call."""
    sid = _check_sid(sid)
    row = _STATE_AND_CALLER.first(s.connection(), {"b_sid": sid})
    if row is None:
        return None, ""
    _known(s).add(sid)
    return state_from_dict(row[0]), row[1] or ""


def recall_with_state(s: Session, keys: list[str], sid: str) -> tuple[str | None, CallState | None]:
    """`recall_response` of the first of `keys` that has an answer, and `load_state(sid)`, in one
    round trip (every webhook needs both before it does anything)."""
    sid = _check_sid(sid)
    if not 1 <= len(keys) <= 4:
        raise ValueError(f"recall_with_state takes 1 to 4 idempotency keys, got {len(keys)}")
    params = {f"k{n}": stored_key(key) for n, key in enumerate(keys)}
    query = _recall_with_state_query(len(keys))
    try:
        row = query.first(s.connection(), {"b_sid": sid, **params})
    except DBAPIError as exc:
        # No pre-ping (db.make_engine): this read, the webhook's first statement, is the ping. A
        # dead pooled connection (database restarted) has invalidated the pool; nothing was
        # written yet, so start again once on a new connection.
        if not exc.connection_invalidated:
            raise
        s.rollback()
        row = query.first(s.connection(), {"b_sid": sid, **params})
    assert row is not None   # a SELECT without FROM: always one row
    body = next((value for value in row[:-1] if value is not None), None)
    if row[-1] is None:
        return body, None
    _known(s).add(sid)
    return body, state_from_dict(row[-1])


@functools.lru_cache(maxsize=4)
def _recall_with_state_query(keys: int) -> PreparedRead:
    # SELECT (SELECT body … key = :k0), …, (SELECT state FROM calls WHERE sid = :b_sid): no FROM,
    # so one row comes back even when neither exists (both backends allow this).
    answers = [select(RESPONSES.c.body).where(RESPONSES.c.key == bindparam(f"k{n}"))
               .scalar_subquery().label(f"b{n}") for n in range(keys)]
    state = select(_CALLS.c.state).where(_CALLS.c.sid == bindparam("b_sid")).scalar_subquery().label("state")
    return PreparedRead(select(*answers, state))


def save_state(s: Session, sid: str, state: CallState, outcomes: Sequence[Outcome] = (), *,
               clear_pending_turn: bool = False) -> None:
    """Store `state` as the call's current conversation state (and its language), with this
    webhook's `outcomes` (see `set_outcome`), in one UPDATE of the call's row.

    `clear_pending_turn`: the webhook used the turn a media stream parked (`pending_turn`).
    """
    if not isinstance(state, CallState):
        raise TypeError(f"save_state needs a CallState, got {type(state).__name__}")
    sid = _existing_sid(s, sid)
    columns = {"state": state_to_dict(state), "language": state.language}
    if clear_pending_turn:
        columns[_CLEAR_PENDING] = None
    _update_call(s, sid, columns, outcomes)


def add_turn(s: Session, sid: str, step: str, prompt: str, heard: str | None, digits: str | None,
             confidence: float | None, classification: Mapping[str, Any] | Any | None,
             decision: Mapping[str, Any] | Any | None) -> None:
    """Record one prompt/answer exchange. `classification`/`decision` may be dicts or the
    routing dataclasses themselves (stored via dataclasses.asdict)."""
    # JSON values go to the engine as they are: its serialiser (convert.dumps) converts the
    # dataclasses, once, when the statement is bound (no JSON round trip here first).
    values = {"step": step, "prompt": prompt or "", "heard": heard, "digits": digits,
              "confidence": None if confidence is None else float(confidence),
              "classification": classification, "decision": decision,
              "created_at": models.utcnow()}
    sid = _existing_sid(s, sid)
    _write_json(_writer(s), _INSERT_TURN, {"call_sid": sid, **values})


def add_event(s: Session, sid: str, kind: str, detail: Mapping[str, Any]) -> None:
    """Record a decision, status change or anything else that is not a caller's turn.

    Decisions made outside a turn (after a dial, at queue exit) use ``kind="decision"``;
    the API lists them together with the turns' decisions.
    """
    if not kind or len(kind) > 32:
        raise ValueError(f"event kind must be 1-32 characters, got {kind!r}")
    sid = _existing_sid(s, sid)
    _write_json(_writer(s), _INSERT_EVENT, {"call_sid": sid, "kind": kind, "detail": dict(detail),
                                            "created_at": models.utcnow()})


def set_outcome(s: Session, sid: str, outcome: str, **detail: Any) -> None:
    """Record how the call was (or is being) resolved, e.g. ``set_outcome(s, sid, "queued",
    queue="roads", wait_s=42)``; the latest outcome wins, details accumulate."""
    _update_call(s, _existing_sid(s, sid), {}, [(outcome, detail)])


def _update_call(s: Session, sid: str, columns: Mapping[str, Any], outcomes: Sequence[Outcome]) -> None:
    """One UPDATE of the call's row: `columns` as given, and the last of `outcomes` with every
    outcome's details merged into the stored ones by the database itself (no read first, and
    the merge is atomic with the write), plus an ``outcome`` event for each."""
    checked = [(_checked_outcome(name), dict(detail)) for name, detail in outcomes]
    detail: dict[str, Any] = {}
    for _name, more in checked:
        detail.update(more)
    conn = _writer(s)
    params: dict[str, Any] = {"b_sid": sid, "b_updated_at": models.utcnow(),
                              **{f"b_{column}": value for column, value in columns.items() if column != _CLEAR_PENDING}}
    keys: tuple[str, ...] | None = None
    if checked:
        keys = tuple(detail)
        params["b_outcome"] = checked[-1][0]
        if conn.dialect.name == "sqlite":
            params.update({f"d{n}": dumps(value) for n, value in enumerate(detail.values())})
        else:
            params["b_detail"] = detail
    if columns or checked:
        _write_json(conn, _call_update(conn.dialect.name, tuple(columns), keys), params)
    for name, more in checked:
        add_event(s, sid, "outcome", {"outcome": name, **more})


def _write_json(conn: Any, statement: Prepared, params: Mapping[str, Any]) -> None:
    """A DEFERred write whose JSON values the engine's serialiser encodes (convert.dumps) as they
    are bound: a value JSON cannot hold is the caller's TypeError, as before anything was sent."""
    try:
        statement.execute(conn, params, execution_options=DEFER)
    except StatementError as exc:
        if isinstance(exc.orig, TypeError):
            raise exc.orig from None
        raise


def _checked_outcome(outcome: str) -> str:
    if not outcome or len(outcome) > 32:
        raise ValueError(f"outcome must be 1-32 characters, got {outcome!r}")
    return outcome


#: `_update_call` column meaning "pending_turn becomes NULL".
_CLEAR_PENDING = "pending_turn=NULL"
_DETAIL_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


@functools.lru_cache(maxsize=64)
def _call_update(dialect: str, columns: tuple[str, ...], detail_keys: tuple[str, ...] | None) -> Prepared:
    """UPDATE calls SET <columns>, updated_at[, outcome, outcome_detail = stored details merged with
    new ones] WHERE sid = :b_sid. A handful of shapes (which columns, which detail keys), so cached.
    ``updated_at`` is a parameter (b_updated_at), not the column's onupdate: a Prepared statement
    runs no Python-side defaults."""
    values: dict[str, Any] = {column: bindparam(f"b_{column}") for column in columns if column != _CLEAR_PENDING}
    values["updated_at"] = bindparam("b_updated_at")
    if _CLEAR_PENDING in columns:
        values["pending_turn"] = null()   # SQL NULL (a JSON-typed None would be stored as 'null')
    if detail_keys is not None:
        values["outcome"] = bindparam("b_outcome")
        stored = _CALLS.c.outcome_detail
        if dialect == "sqlite":
            # json_set replaces each key's value, as dict.update does (a None is stored as null;
            # json_patch would delete the key instead). json() makes the bound text a JSON value.
            for key in detail_keys:
                if not _DETAIL_KEY.match(key):
                    raise ValueError(f"outcome detail keys are identifiers, got {key!r}")
            pairs = [part for n, key in enumerate(detail_keys)
                     for part in (literal(f'$."{key}"'), func.json(bindparam(f"d{n}", type_=String)))]
            values["outcome_detail"] = func.json_set(stored, *pairs) if pairs else stored
        else:   # PostgreSQL: jsonb's || is the same shallow merge
            values["outcome_detail"] = cast(cast(stored, postgresql.JSONB).op("||")(
                bindparam("b_detail", type_=postgresql.JSONB)), postgresql.JSON)
    return Prepared(update(_CALLS).where(_CALLS.c.sid == bindparam("b_sid")).values(values))


def end_call(s: Session, sid: str, status: str, duration_s: float | None = None) -> None:
    """Record Twilio's final CallStatus. A call that ends with no outcome was abandoned (at the
    step it was at): decided by the database from the row, so nothing is read first."""
    sid = _existing_sid(s, sid)
    conn = _writer(s)
    if status in ENDED_STATUSES:
        params = {"b_sid": sid, "b_status": status[:32], "b_ended_at": models.utcnow(), "b_duration_s": duration_s,
                  "b_now": models.utcnow(), "b_step": _FIRST_STEP}
        # The outcome event first: it is written only while the row has no outcome yet.
        _ABANDONED_EVENT[conn.dialect.name].execute(conn, params, execution_options=DEFER)
        _END_CALL[conn.dialect.name].execute(conn, params, execution_options=DEFER)
    else:
        _update_call(s, sid, {"status": status[:32]}, [])
    add_event(s, sid, "status", {"status": status, "duration_s": duration_s})


_FIRST_STEP = CallState().step   # the step of a call whose state was never stored


def _abandoned_statements(dialect: str) -> tuple[Any, Any]:
    """(INSERT the "abandoned" outcome event when the call has no outcome, UPDATE the ended call:
    its status, end, and outcome "abandoned" with the step it was at unless it has an outcome)."""
    calls = _CALLS.c
    at_step = func.coalesce(calls.state["step"].as_string(), bindparam("b_step", type_=String))
    build = func.json_object if dialect == "sqlite" else func.json_build_object
    events = models.Event.__table__
    event = events.insert().from_select(
        ["call_sid", "kind", "detail", "created_at"],
        select(calls.sid, literal("outcome"), build("outcome", "abandoned", "at_step", at_step),
               bindparam("b_now", type_=models.UTCDateTime))
        .where(calls.sid == bindparam("b_sid"), calls.outcome.is_(None)))
    if dialect == "sqlite":
        merged = func.json_set(calls.outcome_detail, '$."at_step"', at_step)
    else:
        merged = cast(cast(calls.outcome_detail, postgresql.JSONB).op("||")(func.jsonb_build_object("at_step", at_step)),
                      postgresql.JSON)
    ended = update(_CALLS).where(calls.sid == bindparam("b_sid")).values(
        status=bindparam("b_status"), ended_at=bindparam("b_ended_at"), duration_s=bindparam("b_duration_s"),
        updated_at=bindparam("b_now"),
        outcome=func.coalesce(calls.outcome, "abandoned"),
        outcome_detail=case((calls.outcome.is_(None), merged), else_=calls.outcome_detail))
    return Prepared(event), Prepared(ended)


_ABANDONED_EVENT, _END_CALL = ({name: _abandoned_statements(name)[n] for name in ("postgresql", "sqlite")}
                               for n in (0, 1))


def caller_number(s: Session, sid: str) -> str | None:
    """The number call `sid` came from ("" when Twilio did not say), None for an unknown call."""
    row = _CALLER.first(s.connection(), {"b_sid": _check_sid(sid)})
    return row[0] if row is not None else None


def add_recording(s: Session, sid: str, url: str, kind: str, duration: float | None) -> None:
    """Remember a recording's URL (Twilio keeps the audio; we keep where it is)."""
    if not url:
        raise ValueError("recording URL is empty")
    sid = _existing_sid(s, sid)
    _writer(s).execute(_INSERT_RECORDING, {"call_sid": sid, "url": url, "kind": kind, "created_at": models.utcnow(),
                                           "duration_s": None if duration is None else float(duration)},
                       execution_options=DEFER)


def add_message(s: Session, sid: str, department: str, kind: str, recording_url: str | None) -> None:
    """A voicemail or callback request for `department`."""
    if not department:
        raise ValueError("message needs a department")
    sid = _existing_sid(s, sid)
    _writer(s).execute(_INSERT_MESSAGE, {"call_sid": sid, "department": department, "kind": kind,
                                         "recording_url": recording_url, "created_at": models.utcnow()},
                       execution_options=DEFER)


def put_pending_turn(s: Session, sid: str, turn: Turn) -> None:
    """Park a turn recognised on the media stream until Twilio fetches the Connect action."""
    sid = _existing_sid(s, sid)
    # The engine encodes the turn (convert.dumps converts the dataclass), as for every JSON write.
    _write_json(_writer(s), _PUT_PENDING, {"b_sid": sid, "b_turn": turn, "b_updated_at": models.utcnow()})


def pending_turn(s: Session, sid: str) -> Turn | None:
    """The turn parked for call `sid`, read only: the webhook that uses it clears it with the
    call's state (`save_state(clear_pending_turn=True)`), so the read stays outside the write
    turn. A Twilio retry racing its original reads it too, and is answered by whichever commits
    first (its stored answer: `replies.remember_response`)."""
    row = _PENDING.first(s.connection(), {"b_sid": _check_sid(sid)})
    parked = row[0] if row is not None else None
    return turn_from_dict(parked) if parked is not None else None
