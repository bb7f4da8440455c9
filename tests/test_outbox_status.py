"""Twilio's StatusCallback for the outbox's texts (POST /outbox/sms-status): signed, recorded on
the row (a late 'sent' never undoes 'delivered'), forged → 403 and nothing changes."""
from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy.orm import Session

from conftest import PUBLIC_URL, signed_post
from fake_twilio_rest import ACCOUNT_SID, FakeTwilioRest
from ivr import outbox
from ivr.cli import cli
from ivr.outbox import delivery
from ivr.outbox import worker as outbox_worker
from ivr.store import db
from ivr.store import outbox as store

pytestmark = pytest.mark.db

CITIZEN = "+13125550104"


@pytest.fixture
def app(app_config, db_url, monkeypatch):
    from ivr import create_app

    monkeypatch.setattr(outbox, "_wakers", [])
    return create_app({**app_config, "IVR_DATABASE_URL": db_url, "IVR_TTS": "off",
                       "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "IVR_SMS_FROM": "+13125550311"})


@pytest.fixture
def sent(app):
    """Two texts sent through the fake Twilio: {key: row}, and what Twilio was asked."""
    with FakeTwilioRest(auth_token=app.config["TWILIO_AUTH_TOKEN"]) as twilio:
        app.config["IVR_TWILIO_API_URL"] = twilio.url
        with Session(db.engine(app)) as s:
            outbox.send_sms(s, to=CITIZEN, body="Case 482-7153", key="a", purpose="case-number")
            outbox.send_sms(s, to="+13125550199", body="Water alert", key="b", purpose="alert")
            s.commit()
        assert outbox_worker.drain(app).counts["sent"] == 2
        asked = list(twilio.messages)
    return _rows(app), asked


def _rows(app):
    with Session(db.engine(app)) as s:
        return {r.key: r for r in store.search(s)}


def _status(client, sid, status, **extra):
    params = {"MessageSid": sid, "MessageStatus": status, "AccountSid": ACCOUNT_SID, "To": CITIZEN, **extra}
    return signed_post(client, "/outbox/sms-status", params)


def test_twilio_is_asked_to_report_delivery_to_our_route(sent):
    _rows_, asked = sent
    assert {m["StatusCallback"] for m in asked} == {PUBLIC_URL + delivery.STATUS_CALLBACK_PATH}


def test_delivery_is_recorded_and_a_late_sent_does_not_undo_it(app, client, sent):
    rows, _asked = sent
    sid = rows["a"].provider_id
    for status in ("sent", "delivered", "sent"):          # callbacks may arrive out of order
        reply = _status(client, sid, status)
        assert reply.status_code == 200 and reply.data.decode().strip().endswith("<Response />")
    row = _rows(app)["a"]
    assert (row.status, row.delivery_status) == ("sent", "delivered") and row.delivery_updated_at is not None


def test_an_undelivered_text_keeps_twilios_error(app, client, sent):
    rows, _asked = sent
    _status(client, rows["b"].provider_id, "undelivered", ErrorCode="30003")
    row = _rows(app)["b"]
    assert row.delivery_status == "undelivered" and "30003" in row.last_error
    shown = CliRunner().invoke(cli, ["outbox", "list", "--url", app.config["IVR_DATABASE_URL"]])
    assert "sent/undelivered" in shown.stdout


def test_a_forged_status_is_refused_and_changes_nothing(app, client, sent):
    rows, _asked = sent
    forged = signed_post(client, "/outbox/sms-status", {"MessageSid": rows["a"].provider_id,
                                                         "MessageStatus": "failed"}, token="not-the-token")
    assert forged.status_code == 403
    assert _rows(app)["a"].delivery_status is None


def test_an_unknown_message_is_answered_and_ignored(client, sent):
    reply = _status(client, "SM" + "f" * 32, "delivered")
    assert reply.status_code == 200
