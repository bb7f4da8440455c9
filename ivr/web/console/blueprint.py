"""The console's one blueprint and its CSRF guard (shared by every page module)."""
from __future__ import annotations

from flask import Blueprint, request
from flask_wtf.csrf import CSRFProtect

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates",
               static_folder="static", static_url_path="/static")
csrf = CSRFProtect()

#: Endpoints Twilio posts to (signed instead): they cannot carry a CSRF token.
CSRF_EXEMPT = {"console.dequeued"}


@bp.before_request
def _csrf_on_every_post() -> None:
    if request.method not in ("GET", "HEAD", "OPTIONS") and request.endpoint not in CSRF_EXEMPT:
        csrf.protect()   # CSRFError (400) when the token is missing or wrong
