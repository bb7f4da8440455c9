"""GET /healthz — is this instance able to serve calls well? For load balancers and admins."""
from __future__ import annotations

from flask import Blueprint, Flask, jsonify

from ivr.routing.source import current_rules
from ivr.store import db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """200 when the rules are loaded and the database answers; 503 (with the reason) otherwise.

    A 503 here does not mean callers are dropped — webhooks still send them to the operator —
    but calls are not being recorded, so the instance should be taken out of rotation.
    """
    rules = current_rules()
    database_problem = db.ping()
    body = {
        "status": "ok" if database_problem is None else "degraded",
        "rules": {"path": rules.source, "departments": len(rules.departments), "intents": len(rules.intents)},
        "database": "ok" if database_problem is None else database_problem,
    }
    return jsonify(body), 200 if database_problem is None else 503


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
