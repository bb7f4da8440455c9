"""GET /healthz and /readyz — for load balancers and orchestrators; details go to the log.

``/healthz`` (liveness, "should this instance be in rotation at all"): 200 ``{"status": "ok"}``
when the rules are loaded and the database answers, else 503 ``{"status": "not ok"}``.
``/readyz`` (readiness, "can it serve a call well right now"): additionally every language's
recogniser is loaded; the body names which check failed, never why (paths, error texts and
connection strings stay in the log, which only operators read).

A 503 does not mean callers are dropped — webhooks still send them to the operator — but calls
are not being recorded or recognised, so the instance should be taken out of rotation.
"""
from __future__ import annotations

import logging

from flask import Blueprint, Flask, Response, jsonify

from ivr.rules_source import current_rules
from ivr.speech.service import speech_service
from ivr.store import db

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)


def _database_ok() -> bool:
    problem = db.ping()
    if problem is not None:
        log.warning("health: database not answering: %s", problem)
    return problem is None


def _rules_ok() -> bool:
    try:
        rules = current_rules()
    except Exception as exc:  # noqa: BLE001 - any failure means "not loaded"; the log says which
        log.warning("health: rules not available: %s: %s", type(exc).__name__, exc)
        return False
    return bool(rules.departments)


def _recognisers_ok() -> bool:
    try:
        languages = current_rules().languages
        waiting = [language for language in languages if not speech_service().ready(language)]
    except Exception as exc:  # noqa: BLE001 - a recogniser that cannot even be chosen is not ready
        log.warning("health: recognisers not available: %s: %s", type(exc).__name__, exc)
        return False
    if waiting:
        log.info("health: recogniser still loading for %s", ", ".join(waiting))
    return not waiting


def _answer(checks: dict[str, bool], good: str, bad: str) -> tuple[Response, int]:
    ok = all(checks.values())
    return jsonify(status=good if ok else bad, checks={name: "ok" if passed else "failed"
                                                      for name, passed in checks.items()}), 200 if ok else 503


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    """200 ok when the rules are loaded and the database answers; 503 not ok otherwise."""
    ok = _rules_ok() & _database_ok()
    return jsonify(status="ok" if ok else "not ok"), 200 if ok else 503


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """200 when the database answers, the rules are loaded and every recogniser is loaded."""
    return _answer({"database": _database_ok(), "rules": _rules_ok(), "recogniser": _recognisers_ok()},
                   "ready", "not ready")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
