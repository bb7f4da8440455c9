"""`/sms/incoming`: Twilio posts each text the city number receives; we answer with TwiML <Message>.

Signed like every webhook (`@twilio_signed`: forged → 403, nothing written). The effects of a text
(opt-out, draft, subscription, service request) and the answer are committed together, keyed by
the MessageSid, so a Twilio retry of the same text is answered from storage and repeats nothing
(`store.replies`). Any failure still answers valid TwiML asking the texter to call the line.
"""
from __future__ import annotations

import functools
import logging
import re
import traceback
from datetime import datetime
from typing import Any, Callable, TypeVar, cast

from flask import Blueprint, Response, current_app, g, request
from werkzeug.exceptions import HTTPException

from ivr import metrics, rules_source
from ivr.prompts.sms_texts import SmsTexts
from ivr.routing.rules import Rules
from ivr.routing.services import service_by_code
from ivr.routing.sms_dialogue import (CaseView, LookUpCase, OpenCase, Reply, Texter, opened_reply, respond,
                                      status_reply)
from ivr.store import alerts, db, replies, service_requests, sms_contacts
from ivr.store.privacy import mask_number
from ivr.telephony.security import twilio_signed
from ivr.telephony.twiml import render_message
from ivr.web.voice.conversation import now, xml

log = logging.getLogger(__name__)
bp = Blueprint("sms", __name__, url_prefix="/sms")
F = TypeVar("F", bound=Callable[..., Any])
_SID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TEXTS = "ivr_sms_texts"
# Used only when the texts themselves cannot be read.
_LAST_RESORT = "Sorry, something went wrong on our side. Please call 311."


def texts() -> SmsTexts:
    """The app's SMS texts (prompts/sms/<lang>.yaml beside the voice prompts)."""
    languages = rules_source.current_rules().languages
    found = current_app.extensions.get(_TEXTS)
    if found is None or found.languages != languages:     # new: or the rules now offer other languages
        found = current_app.extensions[_TEXTS] = SmsTexts(current_app.config["IVR_PROMPTS_DIR"], languages)
    return cast(SmsTexts, found)


def _rescue_body() -> str:
    language = g.get("ivr_language") or "en"
    try:
        words = texts().texts(language).get("error") or _LAST_RESORT
    except Exception:  # noqa: BLE001 - unreadable texts must not stop the rescue answer
        words = _LAST_RESORT
    return str(render_message(words))


def safe_sms(view: F) -> F:
    """Answer valid TwiML whenever `view` raises (never a 5xx): an apology and the line to call."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except HTTPException:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure must still answer the texter
            metrics.RESCUES.labels(endpoint="/sms/incoming").inc()
            # First line of the message only: database errors append the parameters (numbers) later.
            log.error("sms webhook failed for message %s from %s: %s: %s\n%s",
                      (request.values.get("MessageSid") or "?")[:64], mask_number(request.values.get("From")),
                      type(exc).__name__, (str(exc).splitlines() or [""])[0][:300],
                      "".join(traceback.format_tb(exc.__traceback__)))
            s = g.pop("ivr_db_session", None)
            if s is not None:
                try:
                    s.rollback()
                    s.close()
                except Exception:  # noqa: BLE001 - best effort on a dead database
                    log.warning("could not roll back the failed text's session")
            return xml(_rescue_body())

    return cast(F, wrapper)


@bp.route("/incoming", methods=["GET", "POST"])
@twilio_signed
@safe_sms
def incoming() -> Response:
    """One text from a citizen: answer it, and remember what it changed."""
    sid = (request.values.get("MessageSid") or request.values.get("SmsSid") or "").strip()
    phone = (request.values.get("From") or "").strip()
    if not _SID.match(sid) or not phone:
        # Signed by Twilio but not a text we can answer (a misconfigured webhook): say nothing.
        log.warning("sms webhook without MessageSid or From (sid %r)", sid[:20])
        return xml(str(render_message(None)))
    s = db.session()
    key = f"sms:{sid}"
    stored = replies.recall_response(s, key)
    if stored is not None:
        log.info("sms %s: retry answered from storage", sid)
        return xml(stored)
    current, at = rules_source.current_rules(), now()
    contact = sms_contacts.contact(s, phone)
    texter = Texter(language=contact.language, opted_out=contact.opted_out, pending=contact.pending) \
        if contact else Texter()
    g.ivr_language = texter.language
    media = _int(request.values.get("NumMedia"))
    step = respond(texter, request.values.get("Body") or "", media, at, current, rules_source.current_classifier(),
                   carrier_keyword=request.values.get("OptOutType") or None)
    reply = _complete(s, step, sid, phone, current, texter, at)
    for effect in reply.effects:
        _apply(s, effect, phone, reply.language, at)
    if "opt_out" not in {e[0] for e in reply.effects}:
        sms_contacts.save(s, phone, language=reply.language, pending=reply.pending, now=at)
    g.ivr_language = reply.language
    body = str(render_message(texts().render(reply.language, reply.parts) if reply.parts else None))
    log.info("sms %s from %s (%s): %s", sid, mask_number(phone), reply.language, reply.reason)
    metrics.SMS_TEXTS.labels(outcome=reply.outcome or (reply.parts[0][0] if reply.parts else "silent")).inc()
    return xml(replies.remember_response(s, key, body))


def _complete(s: Any, step: Any, sid: str, phone: str, rules: Rules, texter: Texter, at: datetime) -> Reply:
    """Do the I/O a step asks for (create the request, look up a case) and word the answer."""
    if isinstance(step, OpenCase):
        topic = rules.topic_for_intent(step.service.intent)
        alert = alerts.active_alert_for(s, intent=step.service.intent, topic=topic.id if topic else None, now=at)
        created = service_requests.create(
            s, source_key=f"sms:{sid}", channel="sms", service=step.service, description=step.description,
            address=step.address, lat=None, long=None, language=step.language, contact_phone=phone,
            contact_email=None, text_consent=True)
        if alert is not None:
            alerts.count_alert_heard(s, alert.id, "sms")
        return opened_reply(created.case_number, step, at, rules, alert.text(step.language) if alert else None)
    if isinstance(step, LookUpCase):
        found = None
        if step.case is not None:
            request_ = service_requests.by_case(s, step.case)
            # Only the texter's own cases: a case number is not a password.
            if request_ is not None and _same_number(request_.contact_phone, phone):
                found = CaseView(case=request_.case_number, service=service_by_code(rules, request_.service_code),
                                 service_name=request_.service_name, status=request_.status,
                                 note=request_.status_notes or "", department=request_.department)
        return status_reply(step, found, rules, pending=texter.pending)
    return cast(Reply, step)


def _same_number(stored: str | None, phone: str) -> bool:
    return bool(stored) and "".join((stored or "").split()) == "".join(phone.split())


def _apply(s: Any, effect: tuple[str, ...], phone: str, language: str, at: Any) -> None:
    kind = effect[0]
    if kind == "opt_out":
        sms_contacts.opt_out(s, phone, at)
        sms_contacts.set_language(s, phone, language, at)
    elif kind == "opt_in":
        sms_contacts.opt_in(s, phone, at)
    elif kind == "subscribe":
        alerts.subscribe(s, phone=phone, topic=effect[1], language=language, channel="sms")
    elif kind == "unsubscribe":
        alerts.unsubscribe(s, phone=phone, topic=effect[1])
    else:  # pragma: no cover - the conversation only names the effects above
        raise ValueError(f"unknown SMS effect {kind!r}")


def _int(raw: Any) -> int:
    try:
        return max(0, int(raw))
    except (TypeError, ValueError):
        return 0

