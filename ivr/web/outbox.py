"""POST /outbox/sms-status — Twilio's StatusCallback for texts the outbox sent.

The outbox marks a text `sent` when Twilio accepts it; whether the handset got it comes later,
here: Twilio posts MessageSid + MessageStatus (queued, sent, delivered, undelivered, failed …)
and ErrorCode on failures (30003 unreachable handset, 30005 unknown number, 30007 carrier
filtering …). The row keeps that in `delivery_status` (shown by `ivr outbox` and counted in
ivr_outbox_sms_delivery_total). The outbox asks Twilio for it on every text when IVR_PUBLIC_URL
is set (or IVR_SMS_STATUS_CALLBACK names another URL).

Signed like every Twilio webhook (forged → 403, nothing written). It answers an empty TwiML
response, also when the database is down: Twilio does not retry status callbacks, and a 5xx
would only fill Twilio's debugger.
"""
from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Flask, Response, request
from sqlalchemy.exc import SQLAlchemyError

from ivr import metrics
from ivr.store import db
from ivr.store import outbox as store
from ivr.telephony.security import twilio_signed
from ivr.telephony.twiml import render_message

log = logging.getLogger(__name__)

# The path is also ivr.outbox.delivery.STATUS_CALLBACK_PATH (what Twilio is told to call).
bp = Blueprint("outbox", __name__, url_prefix="/outbox")


def _empty() -> Response:
    return Response(str(render_message(None)), mimetype="text/xml")


@bp.post("/sms-status")
@twilio_signed
def sms_status() -> Any:
    sid = (request.form.get("MessageSid") or "").strip()
    status = (request.form.get("MessageStatus") or "").strip().lower()
    if not sid or not status:
        return _empty()
    code = (request.form.get("ErrorCode") or "").strip()
    error = f"Twilio delivery status {status}, error {code}" if code else ""
    try:
        s = db.session()
        known = store.record_delivery(s, sid, status, error)
        s.commit()
    except SQLAlchemyError as exc:
        log.warning("outbox: delivery status %s for %s not recorded: %s", status, sid, type(exc).__name__)
        return _empty()
    if not known:
        log.info("outbox: delivery status %s for unknown message %s", status, sid)
        return _empty()
    metrics.OUTBOX_SMS_DELIVERY.labels(status=status if status in _STATUSES else "other").inc()
    if status in ("undelivered", "failed"):
        log.warning("outbox: text %s %s (error %s)", sid, status, code or "-")
    return _empty()


#: Twilio's message statuses (a fixed set: safe as a metric label).
_STATUSES = {"accepted", "scheduled", "queued", "sending", "sent", "delivered", "undelivered", "failed", "read",
             "canceled", "receiving", "received"}


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
