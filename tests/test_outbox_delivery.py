"""Department notifications through the outbox: e-mail to a local SMTP server (aiosmtpd), a signed
JSON webhook and an upstream Open311 POST to a local HTTP receiver — each receiver going down and
coming back: nothing lost, nothing sent twice; 4xx/5xx answered as documented."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from local_receivers import HttpReceiver, SmtpServer
from outbox_helpers import make_due, outbox_app, outbox_rows, outbox_session
from ivr import outbox
from ivr.outbox import delivery
from ivr.outbox import worker as outbox_worker

pytestmark = pytest.mark.db

CITIZEN = "+13125550104"
SECRET = "webhook-secret-for-tests"
API_KEY = "crm-api-key-for-tests"


@pytest.fixture
def app(db_url, monkeypatch):
    app = outbox_app(db_url, "outbox-delivery-test")
    app.config.update(IVR_STREETS_WEBHOOK_SECRET=SECRET, IVR_CRM_API_KEY=API_KEY, IVR_SMTP_FROM="line@city.example")
    monkeypatch.setattr(outbox, "_wakers", [])      # the tests drain themselves
    return app


def _rules(notify):
    return {"departments": {"streets": {"timezone": "America/Chicago", "notify": notify}}}


REQUEST = {
    "case_number": "4827153", "service": {"code": "POTHOLE", "name": {"en": "Pothole", "es": "Bache"},
                                          "department": "streets"},
    "description": "there's a huge pothole outside 1200 Main Street, my tyre burst",
    "address": "1200 Main Street", "lat": 41.8781, "long": -87.6298, "language": "en", "channel": "voice",
    "contact_phone": CITIZEN, "contact_email": None, "status": "open",
    "created_at": datetime(2026, 12, 7, 3, 15, tzinfo=timezone.utc),
}


def _notify(app, notify, request=REQUEST) -> int:
    with outbox_session(app) as s:
        count = outbox.notify_department(s, request, _rules(notify))
        s.commit()
    return count


# --- e-mail ---------------------------------------------------------------------------------------------
def test_the_department_email_says_what_where_when_in_the_citizens_words_with_the_number_masked(app):
    with SmtpServer() as smtp:
        app.config.update(IVR_SMTP_HOST="127.0.0.1", IVR_SMTP_PORT=smtp.port)
        assert _notify(app, [{"email": "streets@city.example"}]) == 1
        assert outbox_worker.drain(app).counts["sent"] == 1
        [mail] = smtp.messages
    assert mail["To"] == "streets@city.example" and mail["From"] == "line@city.example"
    assert mail["Subject"] == "New 311 request 4827153: Pothole"
    body = mail.get_payload()
    assert "there's a huge pothole outside 1200 Main Street, my tyre burst" in body
    assert "1200 Main Street (41.87810, -87.62980)" in body
    assert "2026-12-06 21:15 CST" in body and "Language: en" in body
    assert CITIZEN not in body and "+1******0104" in body
    [row] = outbox_rows(app)
    assert row.status == "sent" and row.provider_id == mail["Message-ID"]


def test_smtp_down_then_back_delivers_every_mail_once(app):
    smtp = SmtpServer()                              # not started: connection refused
    app.config.update(IVR_SMTP_HOST="127.0.0.1", IVR_SMTP_PORT=smtp.port)
    _notify(app, [{"email": "streets@city.example"}, {"email": "night-desk@city.example"}])
    assert outbox_worker.drain(app).counts["retry"] == 2
    assert all(r.status == "failed" and "unreachable" in r.last_error for r in outbox_rows(app))
    with smtp:                                       # back, on the same port
        smtp.refuse_next("451 4.3.0 mailbox busy, try later")
        make_due(app)
        assert outbox_worker.drain(app).counts == {"sent": 1, "retry": 1, "dead": 0, "lost": 0}
        make_due(app)
        assert outbox_worker.drain(app).counts["sent"] == 1
        assert outbox_worker.drain(app).counts["sent"] == 0
        assert sorted(m["To"] for m in smtp.messages) == ["night-desk@city.example", "streets@city.example"]
    assert [r.status for r in outbox_rows(app)] == ["sent", "sent"]


def test_a_refused_mailbox_is_dead_at_once(app):
    with SmtpServer() as smtp:
        app.config.update(IVR_SMTP_HOST="127.0.0.1", IVR_SMTP_PORT=smtp.port)
        smtp.refuse_next("550 5.1.1 no such user")
        _notify(app, [{"email": "nobody@city.example"}])
        assert outbox_worker.drain(app).counts["dead"] == 1
    [row] = outbox_rows(app)
    assert row.status == "dead" and "550" in row.last_error


def test_notifying_the_same_request_twice_queues_nothing_more(app):
    targets = [{"email": "streets@city.example"}, {"webhook": "http://127.0.0.1:9/h", "secret_env": "X"}]
    assert _notify(app, targets) == 2
    assert _notify(app, targets) == 0
    assert _notify(app, []) == 0                     # a department without targets: nothing
    assert len(outbox_rows(app)) == 2


# --- signed JSON webhook ---------------------------------------------------------------------------------
def test_the_webhook_is_signed_and_the_receiver_can_verify_it(app):
    with HttpReceiver() as hook:
        _notify(app, [{"webhook": f"{hook.url}/311", "secret_env": "IVR_STREETS_WEBHOOK_SECRET"}])
        assert outbox_worker.drain(app).counts["sent"] == 1
        [got] = hook.requests
    headers, body = got["headers"], got["body"]
    assert delivery.verify_webhook(SECRET, headers["X-IVR-Timestamp"], headers["X-IVR-Signature"], body)
    assert not delivery.verify_webhook("another-secret", headers["X-IVR-Timestamp"], headers["X-IVR-Signature"], body)
    assert not delivery.verify_webhook(SECRET, headers["X-IVR-Timestamp"], headers["X-IVR-Signature"],
                                       body.replace(b"4827153", b"4827154"))
    stale = int(headers["X-IVR-Timestamp"]) + 3600
    assert not delivery.verify_webhook(SECRET, headers["X-IVR-Timestamp"], headers["X-IVR-Signature"], body, now=stale)
    document = json.loads(body)
    assert document["event"] == "service_request.created" and document["case_number"] == "4827153"
    assert document["contact_phone"] == CITIZEN and document["department"] == "streets"
    assert document["description"] == REQUEST["description"]
    assert headers["Idempotency-Key"] == outbox_rows(app)[0].key


def test_webhook_receiver_down_then_5xx_then_back_delivers_once(app):
    hook = HttpReceiver()
    _notify(app, [{"webhook": f"{hook.url}/311", "secret_env": "IVR_STREETS_WEBHOOK_SECRET"}])
    assert outbox_worker.drain(app).counts["retry"] == 1         # nobody listening
    with hook:
        hook.fail_next(503, "maintenance")
        make_due(app)
        assert outbox_worker.drain(app).counts["retry"] == 1
        assert "HTTP 503" in outbox_rows(app)[0].last_error
        make_due(app)
        assert outbox_worker.drain(app).counts["sent"] == 1
        make_due(app)
        assert outbox_worker.drain(app).counts["sent"] == 0
        assert len(hook.requests) == 2                           # the 503 and the one that counted
    [row] = outbox_rows(app)
    assert row.status == "sent" and row.attempts == 3


def test_a_4xx_from_the_webhook_is_dead_at_once_with_the_reason(app):
    with HttpReceiver() as hook:
        hook.fail_next(422, '{"error": "unknown department"}')
        _notify(app, [{"webhook": f"{hook.url}/311", "secret_env": "IVR_STREETS_WEBHOOK_SECRET"}])
        assert outbox_worker.drain(app).counts["dead"] == 1
    [row] = outbox_rows(app)
    assert row.status == "dead" and "HTTP 422" in row.last_error and "unknown department" in row.last_error


def test_a_webhook_without_its_secret_waits_for_it_and_never_goes_unsigned(app):
    with HttpReceiver() as hook:
        _notify(app, [{"webhook": f"{hook.url}/311", "secret_env": "IVR_NOT_SET"}])
        assert outbox_worker.drain(app).counts["retry"] == 1
        assert hook.requests == []
    assert "IVR_NOT_SET" in outbox_rows(app)[0].last_error


# --- upstream Open311 ----------------------------------------------------------------------------------
def test_the_request_is_posted_upstream_as_georeport_v2_with_the_api_key(app):
    answer = [{"service_request_id": "CRM-991", "service_notice": "", "account_id": None}]
    with HttpReceiver(answer=answer) as crm:
        _notify(app, [{"open311": f"{crm.url}/open311/v2", "api_key_env": "IVR_CRM_API_KEY",
                       "jurisdiction_id": "city.example"}])
        assert outbox_worker.drain(app).counts["sent"] == 1
        assert crm.requests[0]["path"] == "/open311/v2/requests.json"
        form = crm.form(0)
    assert form["api_key"] == API_KEY and form["service_code"] == "POTHOLE"
    assert form["jurisdiction_id"] == "city.example"
    assert (form["lat"], form["long"], form["address_string"]) == ("41.8781", "-87.6298", "1200 Main Street")
    assert form["description"] == REQUEST["description"] and form["phone"] == CITIZEN
    assert form["attribute[ivr_case_number]"] == "4827153"
    [row] = outbox_rows(app)
    assert row.status == "sent" and row.provider_id == "CRM-991"
    assert API_KEY not in json.dumps(row.payload)                # the key is read when sending, never stored


def test_open311_down_then_back_delivers_once_and_a_bad_key_is_dead(app):
    crm = HttpReceiver(answer=[{"token": "t-77"}])
    _notify(app, [{"open311": crm.url, "api_key_env": "IVR_CRM_API_KEY"}])
    assert outbox_worker.drain(app).counts["retry"] == 1
    with crm:
        make_due(app)
        assert outbox_worker.drain(app).counts["sent"] == 1
        assert len(crm.requests) == 1
        assert outbox_rows(app)[0].provider_id == "token:t-77"
        other = dict(REQUEST, case_number="5550123")
        crm.fail_next(403, '[{"code": 403, "description": "Invalid api_key"}]')
        _notify(app, [{"open311": crm.url, "api_key_env": "IVR_CRM_API_KEY"}], request=other)
        assert outbox_worker.drain(app).counts["dead"] == 1
    dead = [r for r in outbox_rows(app) if r.status == "dead"]
    assert "Invalid api_key" in dead[0].last_error


# --- the real wiring: a service request made by the line reaches the department ------------------------
def test_a_real_service_request_reaches_the_departments_mailbox_and_webhook(app):
    from dataclasses import replace

    from conftest import RULES_PATH
    from ivr.routing import services
    from ivr.routing.load import load_rules
    from ivr.routing.rules import NotifyTarget
    from ivr.store import service_requests

    rules = load_rules(RULES_PATH)
    pothole = services.service_for_intent(rules, "pothole")
    with SmtpServer() as smtp, HttpReceiver() as hook:
        app.config.update(IVR_SMTP_HOST="127.0.0.1", IVR_SMTP_PORT=smtp.port)
        department = replace(rules.departments[pothole.department], notify=(
            NotifyTarget("email", "roads@city.example.gov"),
            NotifyTarget("webhook", f"{hook.url}/311", secret_env="IVR_STREETS_WEBHOOK_SECRET")))
        rules = replace(rules, departments={**rules.departments, pothole.department: department})
        with outbox_session(app) as s:
            request = service_requests.create(
                s, source_key="voice:CA-e2e", channel="voice", service=pothole,
                description="hay un bache enorme en la calle Main", address="12 Main Street", lat=None,
                long=None, language="es", contact_phone=CITIZEN, contact_email=None, text_consent=True,
                rules=rules)
            s.commit()
        assert outbox_worker.drain(app).counts["sent"] == 2
        [mail], [posted] = smtp.messages, hook.requests
    assert request.case_number in mail["Subject"] and pothole.department in mail.get_payload()
    assert "hay un bache enorme en la calle Main" in mail.get_payload() and "Language: es" in mail.get_payload()
    document = json.loads(posted["body"])
    assert (document["case_number"], document["service_code"], document["language"]) == \
        (request.case_number, pothole.code, "es")
    assert document["contact_phone"] == CITIZEN and document["address"] == "12 Main Street"
