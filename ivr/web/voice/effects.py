"""The voice side of the channels: what a decision asks of the edge besides an answer.

The core (`ivr.routing`) decides; this module does the I/O a decision implies, in the webhook's
transaction, so it commits once with the answer (`conversation.apply`) and a Twilio retry of the
same webhook is answered from storage, repeating nothing:
- `FileReport` → `service_requests.create` with source key ``voice:<CallSid>`` (one request per
  call whatever is retried), then `report.filed` decides how the case number is read back
  (`file_report`, the one effect before rendering); the others are `perform`ed after rendering:
- `TextCase` → `outbox.send_sms` to the caller's number, keyed ``voice-case:<CallSid>`` (texted
  once per call), and the request remembers the consent;
- `Subscribe` → `alerts.subscribe` (channel voice);
- `AlertNotice` → `alerts.count_alert_heard` the first time this caller hears it.
`notice_for` looks up the active alert for what the caller is calling about, before `decide`.
"""
from __future__ import annotations

import logging
import re
from datetime import datetime

from flask import request

from ivr import outbox, prompts
from ivr.routing import report
from ivr.routing.actions import AlertNotice, FileReport, Subscribe, TextCase
from ivr.routing.classify import Classification
from ivr.routing.decide import ALERT_STEPS
from ivr.routing.menu import localized, menu_options
from ivr.routing.rules import Rules
from ivr.routing.services import service_for_intent
from ivr.routing.state import CallState, Decision, Notice
from ivr.store import alerts, calls, db, service_requests
from ivr.store.privacy import mask_number

log = logging.getLogger(__name__)

#: A number a text can reach: E.164.
_E164 = re.compile(r"^\+[1-9]\d{7,14}$")
#: What Twilio sends as From for a withheld number (anonymous, restricted, unavailable, blocked).
WITHHELD = frozenset({"+266696687", "+7378742833", "+8656696", "+2562533", "+86282452253"})


def caller_number(sid: str) -> str:
    """The caller's number: Twilio sends it with every webhook; else the one the call started with."""
    number = (request.values.get("From") or "").strip()
    return number or calls.caller_number(db.session(), sid) or ""


def can_text(number: str) -> bool:
    """Whether a text to `number` can reach the caller (a real E.164 number, not a withheld one)."""
    return bool(_E164.match(number)) and number not in WITHHELD


def notice_for(sid: str, state: CallState, classification: Classification | None, now: datetime,
               rules: Rules) -> Notice | None:
    """The active alert for the intent the caller's words point to, or for the topic of the
    department a menu key chooses (at `ALERT_STEPS` only: one query where it can matter)."""
    if state.step not in ALERT_STEPS:
        return None
    intent = state.intent if state.step == "alert" else None
    if classification is not None and classification.top is not None and not classification.emergency:
        intent = classification.top.intent or intent
    topic_id = None
    if state.step == "menu":
        # A key that chooses a department: the alert of that department's topic, if any.
        digits = (request.values.get("Digits") or "").strip()
        option = next((o for o in menu_options(rules, state.menu_path) or () if o.digit == digits), None)
        topic = next((t for t in rules.topics if option is not None and t.department == option.department), None)
        topic_id = topic.id if topic is not None else None
    if not intent and not topic_id:
        return None
    alert = alerts.active_alert_for(db.session(), intent=intent, topic=topic_id, now=now)
    if alert is None:
        return None
    topic = rules.topic(alert.topic)
    name = localized(topic.name, state.language, rules) if topic is not None else alert.topic
    return Notice(alert.id, alert.topic, name, alert.text(state.language), can_subscribe=can_text(caller_number(sid)))


def file_report(sid: str, decision: Decision, rules: Rules) -> tuple[Decision, calls.Outcome | None]:
    """File the report a `FileReport` decision asks for: the decision to render (it reads the
    case number back) and the outcome to record with the call's state. Other decisions pass.

    The one effect that must come before rendering (the case number is only known once filed).
    """
    action = decision.action
    if not isinstance(action, FileReport):
        return decision, None
    service = service_for_intent(rules, action.intent)
    if service is None:
        raise LookupError(f"intent {action.intent!r} has no service to file a request under")
    number = caller_number(sid)
    state = decision.state
    filed = service_requests.create(
        db.session(), source_key=f"voice:{sid}", channel="voice", service=service,
        description=action.description, address=action.address, lat=None, long=None,
        language=state.language, contact_phone=number or None, contact_email=None,
        text_consent=False, call_sid=sid, rules=rules)
    log.info("call %s: filed case %s (%s)", sid, filed.case_number, service.code)
    outcome = ("reported", {"department": service.department, "service": service.code,
                            "case": filed.case_number, "reason": decision.reason})
    return report.filed(decision, filed.case_number, can_text(number), rules), outcome


def perform(sid: str, decision: Decision, rules: Rules) -> None:
    """Do the writes the rendered `decision` asks of the edge (a report is filed earlier, by
    `file_report`). Called among the webhook's other writes, after rendering."""
    action = decision.action
    s = db.session()
    state = decision.state
    if isinstance(action, TextCase):
        number = caller_number(sid)
        if can_text(number):
            service = service_for_intent(rules, state.intent or "")
            body = prompts.text("case_sms", state.language, case=action.case,
                                service=service.name_in(state.language) if service else action.service)
            outbox.send_sms(s, to=number, body=body, key=f"voice-case:{sid}", purpose="case_number")
            service_requests.set_text_consent(s, action.case, True)   # they asked: the request remembers
            log.info("call %s: case %s will be texted to %s", sid, action.case, mask_number(number))
    elif isinstance(action, Subscribe):
        number = caller_number(sid)
        if can_text(number):
            alerts.subscribe(s, phone=number, topic=action.topic, language=state.language, channel="voice")
            log.info("call %s: %s subscribed to %s by voice", sid, mask_number(number), action.topic)
    elif isinstance(action, AlertNotice) and action.reprompt is None:
        alerts.count_alert_heard(s, action.alert_id, "voice")
