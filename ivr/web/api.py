"""The JSON API over call records: ``GET /api/calls/<CallSid>`` and ``GET /api/calls?limit=N``.

Every request needs ``Authorization: Bearer <token>``:

- a named token made with ``ivr api tokens add NAME --scope …`` (stored hashed, revocable), or
- the bootstrap token ``IVR_API_TOKEN`` from the environment, with the scopes in
  ``IVR_API_TOKEN_SCOPES`` (default ``calls:read``): enough to make named tokens unnecessary
  for a first look, and kept so existing set-ups keep working.

Scopes: ``calls:read`` reads call records with callers' numbers masked; ``numbers:read`` adds the
full numbers. Every read — including a read of an unknown CallSid — is written to the audit log
(token, time, what was read) in the same transaction before the answer is sent: if the audit
entry cannot be written, nothing is read out (503). With no token at all the API refuses everyone.
"""
from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from sqlalchemy.exc import SQLAlchemyError

from ivr.store import audit, calls, db, history, tokens
from ivr.store.privacy import mask_record

log = logging.getLogger(__name__)
bp = Blueprint("api", __name__, url_prefix="/api")
DEFAULT_LIMIT = 50
BOOTSTRAP = "IVR_API_TOKEN"


@dataclass(frozen=True)
class Reader:
    """Who is reading: the token's name as the audit log shows it, and what it may read."""
    actor: str
    scopes: frozenset[str]
    token_id: int | None = None   # a named token's row, whose last use is recorded with the audit entry

    @property
    def sees_numbers(self) -> bool:
        return tokens.SCOPE_NUMBERS in self.scopes


def _error(status: int, message: str) -> tuple[Response, int]:
    return jsonify(error=message), status


def bootstrap_scopes(config: Any) -> frozenset[str]:
    """IVR_API_TOKEN_SCOPES (space or comma separated); TokenError names a bad one."""
    raw = str(config.get("IVR_API_TOKEN_SCOPES") or tokens.SCOPE_CALLS)
    return frozenset(tokens.check_scopes(raw.replace(",", " ").split()))


def _reader(given: str) -> Reader | None:
    """The reader `given` identifies: the bootstrap token, a live named token, or None."""
    bootstrap = current_app.config.get("IVR_API_TOKEN") or ""
    # compare_digest on bytes: constant time, and no TypeError on non-ASCII input.
    if bootstrap and hmac.compare_digest(given.encode(), bootstrap.encode()):
        return Reader(f"env:{BOOTSTRAP}", bootstrap_scopes(current_app.config))
    found = tokens.find(db.session(), given)
    if found is None:
        return None
    return Reader(f"token:{found.name}", found.scope_set, found.id)


@bp.before_request
def require_token() -> tuple[Response, int] | None:
    """401 without a valid bearer token, 403 without the calls:read scope."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    reader = _reader(given.strip()) if scheme.lower() == "bearer" and given.strip() else None
    if reader is None:
        log.warning("API: refused %s %s (missing or unknown token)", request.method, request.path)
        response, status = _error(401, "missing or wrong API token: send 'Authorization: Bearer <token>' "
                                       "(make one with `ivr api tokens add NAME`)")
        response.headers["WWW-Authenticate"] = 'Bearer realm="ivr"'
        return response, status
    if tokens.SCOPE_CALLS not in reader.scopes:
        return _error(403, f"this token lacks the {tokens.SCOPE_CALLS} scope")
    g.api_reader = reader
    return None


def _audited(action: str, target: str, detail: dict[str, Any], body: Any) -> Response:
    """Write the audit entry (and the token's last use), commit, then answer `body`."""
    reader: Reader = g.api_reader
    s = db.session()
    # The only writes of an API read, at its end: the read itself runs outside a write transaction.
    if reader.token_id is not None:
        tokens.touch(s, reader.token_id)
    audit.record(s, reader.actor, action, target, {**detail, "numbers": reader.sees_numbers})
    s.commit()
    return jsonify(body)


@bp.get("/calls/<sid>")
def get_call(sid: str) -> tuple[Response, int] | Response:
    """One call's full record: numbers (masked without numbers:read), turns, decisions, outcome."""
    if not sid or len(sid) > calls.MAX_SID:
        return _error(400, f"CallSid must be 1-{calls.MAX_SID} characters")
    record = history.call_record(db.session(), sid)
    if record is None:
        _audited("api.calls.read", sid, {"found": False}, None)
        return _error(404, f"no call with CallSid {sid}")
    shown = record if g.api_reader.sees_numbers else mask_record(record)
    return _audited("api.calls.read", sid, {"found": True}, shown)


@bp.get("/calls")
def list_calls() -> tuple[Response, int] | Response:
    """The most recent calls (summaries, newest first); ``limit`` 1..500, default 50."""
    raw = request.args.get("limit", str(DEFAULT_LIMIT))
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= history.MAX_RECENT:
        return _error(400, f"limit must be an integer from 1 to {history.MAX_RECENT}, got {raw!r}")
    recent = history.recent_calls(db.session(), limit)
    shown = recent if g.api_reader.sees_numbers else [mask_record(call) for call in recent]
    return _audited("api.calls.list", "", {"limit": limit, "sids": [call["sid"] for call in recent]},
                    {"calls": shown})


@bp.errorhandler(SQLAlchemyError)
def database_unavailable(exc: SQLAlchemyError) -> tuple[Response, int]:
    """503 with a JSON error when the database cannot answer (the API is not on the call path)."""
    log.error("API database error: %s", type(exc).__name__)
    return _error(503, "the call database is unavailable; try again shortly")


def init_app(app: Flask) -> None:
    """Register the API blueprint (a bad IVR_API_TOKEN_SCOPES refuses to start)."""
    try:
        bootstrap_scopes(app.config)
    except tokens.TokenError as exc:
        raise RuntimeError(f"IVR_API_TOKEN_SCOPES: {exc}") from None
    app.register_blueprint(bp)
