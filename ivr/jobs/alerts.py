"""Publishing a topic alert: store it, and text every subscriber through the outbox.

Each subscriber's text is one outbox row keyed `alert:<id>:<hash of the number>`, so publishing
again (`ivr alerts resend ID`, after new people subscribed) texts only those not yet texted, and
a crash mid-way loses nothing (all rows commit with the alert, or none do).

Rate: texts are spread over time with the outbox's `not_before`, `IVR_ALERT_RATE` texts per second
(default 1: a US long code's throughput at Twilio; a short code or a Messaging Service with several
numbers can take 10–100). 1,000 subscribers at the default rate take about 17 minutes.

STOP is honoured twice: opted-out numbers get no row now, and the outbox checks
`sms_contacts.opted_out` again at send time (a STOP that arrives while the texts drain still
stops the rest). Delivery is tracked by the outbox rows' status (`delivery`).
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Mapping

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ivr import outbox
from ivr.prompts.sms_texts import SmsTexts
from ivr.routing.rules import Rules, Topic
from ivr.store import alerts, sms_contacts
from ivr.store.outbox import OutboxMessage

DEFAULT_RATE = 1.0      # texts per second


def key_prefix(alert_id: int) -> str:
    return f"alert:{alert_id}:"


def text_key(alert_id: int, phone: str) -> str:
    """The outbox key of one subscriber's text: stable per alert and number, the number not in it."""
    digest = hashlib.sha256(sms_contacts.normalise_phone(phone).encode()).hexdigest()[:24]
    return f"{key_prefix(alert_id)}{digest}"


def find_topic(rules: Rules, topic_id: str) -> Topic:
    """The rules' topic, or ValueError naming the topics there are."""
    topic = rules.topic(topic_id.strip().lower())
    if topic is None:
        known = ", ".join(t.id for t in rules.topics) or "none (add a topics: section to the rules)"
        raise ValueError(f"no topic '{topic_id}' in the rules; topics: {known}")
    return topic


def publish(s: Session, rules: Rules, texts: SmsTexts, *, topic_id: str, message: Mapping[str, str], by: str,
            until: datetime | None, now: datetime, rate: float = DEFAULT_RATE) -> tuple[alerts.Alert, int]:
    """Create the alert and queue its texts (no commit); (alert, texts queued)."""
    topic = find_topic(rules, topic_id)
    written = {lang: text.strip() for lang, text in message.items() if text and text.strip()}
    alert = alerts.create_alert(s, topic=topic.id, intents=topic.intents, message=written, created_by=by,
                                until=until, now=now)
    return alert, fan_out(s, rules, texts, alert, now=now, rate=rate)


def fan_out(s: Session, rules: Rules, texts: SmsTexts, alert: alerts.Alert, *, now: datetime,
            rate: float = DEFAULT_RATE) -> int:
    """Queue the alert's text for every subscriber not yet texted and not opted out; how many."""
    if rate <= 0:
        raise ValueError("the alert rate must be a positive number of texts per second")
    topic = rules.topic(alert.topic)
    queued = 0
    for subscriber in alerts.subscribers(s, alert.topic):
        if sms_contacts.opted_out(s, subscriber.phone):
            continue
        language = subscriber.language if subscriber.language in rules.languages else rules.default_language
        keyword = (topic.keywords.get(language, (topic.id,))[0] if topic else alert.topic).upper()
        name = topic.name.get(language, topic.id) if topic else alert.topic
        body = texts.render(language, [("alert", {"topic": name, "message": alert.text(language), "keyword": keyword})])
        # Spread over time: the n-th new text is due n / rate seconds from now.
        due = now + timedelta(seconds=queued / rate)
        if outbox.send_sms(s, to=subscriber.phone, body=body, key=text_key(alert.id, subscriber.phone),
                           purpose="alert", not_before=due):
            queued += 1
    if queued:
        alerts.add_recipients(s, alert.id, queued)
    return queued


def delivery(s: Session, alert_id: int) -> dict[str, int]:
    """How the alert's texts are doing: outbox status → count (pending, sending, sent, failed, dead)."""
    table = OutboxMessage.__table__
    stmt = (select(table.c.status, func.count()).where(table.c.key.startswith(key_prefix(alert_id), autoescape=True))
            .group_by(table.c.status))
    return {status: int(count) for status, count in s.connection().execute(stmt)}
