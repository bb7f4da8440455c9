"""Log lines an operator can follow: each one carries the call's CallSid and the request id.

- ``configure(config)``: one root handler, text by default or one JSON object per line with
  ``IVR_LOG_FORMAT=json`` (time, level, logger, message, call_sid, request_id, exception).
- ``init_app(app)``: every request gets a request id (the caller's ``X-Request-Id`` when it is
  sane, else a new one; echoed in the response) and the ``CallSid`` it carries.
- ``bind_call(sid)``: the media-stream websocket learns its CallSid from Twilio's ``start``
  message, after the upgrade request; it binds it here so its lines carry it too.

The ids live in context variables, so they follow a request's thread — and the decode pool's
jobs, which run in the context of whoever submitted them (ivr.speech.pool).

A last safety net masks anything that looks like a full phone number in a message; call sites
still mask numbers themselves (ivr.store.privacy.mask_number), this only catches a slip.
"""
from __future__ import annotations

import contextvars
import json
import logging
import random
import re
import sys
from datetime import datetime, timezone
from typing import Any, Mapping

from flask import Flask, Response, request

from ivr.store.privacy import mask_number

call_sid_var: contextvars.ContextVar[str] = contextvars.ContextVar("ivr_call_sid", default="-")
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("ivr_request_id", default="-")

_SID = re.compile(r"^[A-Za-z0-9]{2,64}$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
#: A phone number in E.164 or North American form, not part of a longer token (a CallSid's digits).
_PHONE_IN_TEXT = re.compile(r"(?<![\w+*])\+?1?[ (.-]?\d{3}[ ).-]{0,2}\d{3}[ .-]?\d{4}(?![\w*])")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [call %(call_sid)s req %(request_id)s]: %(message)s"


class ContextFilter(logging.Filter):
    """Adds call_sid and request_id to every record, and masks stray phone numbers."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.call_sid = call_sid_var.get()
        record.request_id = request_id_var.get()
        message = record.getMessage()
        masked = _PHONE_IN_TEXT.sub(lambda match: mask_number(match.group(0)), message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


class JSONFormatter(logging.Formatter):
    """One JSON object per line (what log shippers parse without a custom pattern)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "call_sid": getattr(record, "call_sid", "-"),
            "request_id": getattr(record, "request_id", "-"),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(config: Mapping[str, Any]) -> None:
    """Install the one root handler (again on every call: the last app's format wins)."""
    kind = str(config.get("IVR_LOG_FORMAT") or "text").strip().lower()
    if kind not in ("text", "json"):
        raise ValueError(f"IVR_LOG_FORMAT must be text or json, got {kind!r}")
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_ivr", False)]:
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._ivr = True  # type: ignore[attr-defined]
    handler.addFilter(ContextFilter())
    handler.setFormatter(JSONFormatter() if kind == "json" else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    # twilio's client logs every REST request's headers at INFO (a dozen lines per text the outbox
    # sends); the outbox and the console log one line per request themselves, numbers masked.
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)


def bind_call(call_sid: str | None) -> None:
    """Lines from here on (in this context) carry `call_sid`."""
    if call_sid and _SID.match(call_sid):
        call_sid_var.set(call_sid)


def _begin_request() -> None:
    given = request.headers.get("X-Request-Id", "")
    # An id to follow, not a secret: `random` (reseeded in each forked worker) rather than
    # os.urandom, whose getrandom() call gives up the GIL and must win it back on every request.
    request_id_var.set(given if given and _REQUEST_ID.match(given) else f"{random.getrandbits(64):016x}")
    call_sid_var.set("-")
    bind_call(request.values.get("CallSid") or request.args.get("call"))


def _echo_request_id(response: Response) -> Response:
    response.headers["X-Request-Id"] = request_id_var.get()
    return response


def _end_request(_exc: BaseException | None) -> None:
    call_sid_var.set("-")
    request_id_var.set("-")


def init_app(app: Flask) -> None:
    """Log format from IVR_LOG_FORMAT; request id and CallSid bound for every request."""
    configure(app.config)
    app.before_request(_begin_request)
    app.after_request(_echo_request_id)
    app.teardown_request(_end_request)
