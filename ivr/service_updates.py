"""Telling a citizen that their service request moved on: a text when it is acknowledged or closed.

Only when they agreed to be texted (`text_consent`, asked by the phone and implied by texting us),
in their language, with the same words as the SMS channel's STATUS answer (prompts/sms/<lang>.yaml:
status_acknowledged / status_closed / status_note). The text goes through the outbox (retries,
STOP checked when it is sent), keyed by the change, so a repeated click or command sends it once.

App layer, like ivr.rules_source: the console and `ivr requests` call it after `set_status`.
"""
from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session

from ivr import outbox
from ivr.prompts.sms_texts import SmsTexts
from ivr.routing.rules import Rules
from ivr.routing.services import ServiceRequest, service_by_code
from ivr.store import service_requests

#: Statuses the citizen hears about (a reopened request is news for the department, not for them).
TOLD = ("acknowledged", "closed")


def tell_citizen(s: Session, request: ServiceRequest, rules: Rules, prompts_dir: str | Path) -> bool:
    """Queue the text about `request`'s current status; False when there is nothing to send."""
    phone = request.contact_phone or ""
    if request.status not in TOLD or not request.text_consent or not phone or phone.startswith("hash:"):
        return False
    language = request.language if request.language in rules.languages else rules.default_language
    department = rules.departments.get(request.department)
    service = service_by_code(rules, request.service_code)
    values = {"case": request.case_number,
              "department": department.name.get(language, request.department) if department else request.department,
              "service": service.name_in(language) if service else request.service_name}
    parts = [(f"status_{request.status}", values)]
    if request.status_notes:
        parts.append(("status_note", {"note": request.status_notes[:300]}))
    body = SmsTexts(prompts_dir, rules.languages).render(language, parts)
    # One text per change: the change's place in the history makes the key.
    change = len(service_requests.history(s, request.case_number))
    return outbox.send_sms(s, to=phone, body=body, key=f"status:{request.case_number}:{change}",
                           purpose=f"status_{request.status}")
