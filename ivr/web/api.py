"""The JSON API over call records: ``GET /api/calls/<CallSid>`` and ``GET /api/calls?limit=N``.

Every request needs ``Authorization: Bearer <IVR_API_TOKEN>``. With no token configured the
API is closed (401 for everyone) rather than open: the records hold callers' full numbers.
"""
from __future__ import annotations

import hmac
import logging

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from sqlalchemy.exc import SQLAlchemyError

from ivr.store import calls, db, history

log = logging.getLogger(__name__)
bp = Blueprint("api", __name__, url_prefix="/api")
DEFAULT_LIMIT = 50


def _error(status: int, message: str) -> tuple[Response, int]:
    return jsonify(error=message), status


@bp.before_request
def require_token() -> tuple[Response, int] | None:
    """401 unless the request carries the configured bearer token."""
    expected = current_app.config.get("IVR_API_TOKEN") or ""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # compare_digest on bytes: constant time, and no TypeError on non-ASCII input.
    if not expected or scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), expected.encode()):
        response, status = _error(401, "missing or wrong API token: send 'Authorization: Bearer <IVR_API_TOKEN>'")
        response.headers["WWW-Authenticate"] = 'Bearer realm="ivr"'
        return response, status
    return None


@bp.get("/calls/<sid>")
def get_call(sid: str) -> tuple[Response, int] | Response:
    """One call's full record: numbers, language, turns, decisions, outcome, recordings."""
    if not sid or len(sid) > calls.MAX_SID:
        return _error(400, f"CallSid must be 1-{calls.MAX_SID} characters")
    record = history.call_record(db.session(), sid)
    if record is None:
        return _error(404, f"no call with CallSid {sid}")
    return jsonify(record)


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
    return jsonify(calls=history.recent_calls(db.session(), limit))


@bp.errorhandler(SQLAlchemyError)
def database_unavailable(exc: SQLAlchemyError) -> tuple[Response, int]:
    """503 with a JSON error when the database cannot answer (the API is not on the call path)."""
    log.error("API database error: %s", type(exc).__name__)
    return _error(503, "the call database is unavailable; try again shortly")


def init_app(app: Flask) -> None:
    """Register the API blueprint."""
    app.register_blueprint(bp)
