"""`ivr outbox` (stats, list, show, retry) with citizens' numbers masked, and the outbox series on
/metrics (read from the table when scraped), on SQLite and PostgreSQL."""
from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy.orm import Session

from fake_twilio_rest import ACCOUNT_SID, AUTH_TOKEN, FakeTwilioRest
from ivr import outbox
from ivr.cli import cli
from ivr.outbox import worker as outbox_worker
from ivr.store import db
from ivr.store import outbox as store

pytestmark = pytest.mark.db

CITIZEN = "+13125550104"
TOKEN = "metrics-secret"


@pytest.fixture
def app(app_config, db_url, monkeypatch):
    from ivr import create_app

    monkeypatch.setattr(outbox, "_wakers", [])
    return create_app({**app_config, "IVR_DATABASE_URL": db_url, "IVR_TTS": "off", "IVR_METRICS_TOKEN": TOKEN,
                       "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                       "IVR_SMS_FROM": "+13125550311"})


@pytest.fixture
def sent_and_dead(app):
    """One text refused by Twilio (dead: the first claimed), one sent, one e-mail waiting."""
    with FakeTwilioRest() as twilio:
        app.config["IVR_TWILIO_API_URL"] = twilio.url
        with Session(db.engine(app)) as s:
            outbox.send_sms(s, to=CITIZEN, body="Your case number is 482-7153.", key="a", purpose="case-number")
            outbox.send_sms(s, to="+13125550199", body="Water main alert", key="b", purpose="alert")
            s.commit()
        twilio.fail_next(400, 21610, "Attempt to send to unsubscribed recipient")
        outbox_worker.drain(app)
    with Session(db.engine(app)) as s:
        outbox.enqueue(s, kind="email", key="c", target="streets@city.example",
                       payload={"subject": "New request", "text": "…"})
        s.commit()
        return {r.key: r for r in store.search(s)}


def _run(db_url, *args):
    result = CliRunner().invoke(cli, ["outbox", *args, "--url", db_url])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_stats_count_by_kind_and_status(db_url, sent_and_dead):
    out = _run(db_url, "stats")
    assert out.splitlines()[0].split() == ["kind", "pending", "sending", "sent", "failed", "dead"]
    assert "sms 0 0 1 0 1" in " ".join(out.split())
    assert "email 1 0 0 0 0" in " ".join(out.split())
    assert "waiting: 1" in out


def test_list_filters_and_masks_numbers(db_url, sent_and_dead):
    out = _run(db_url, "list")
    assert CITIZEN not in out and "+1******0104" in out and "+1******0199" in out and "streets@city.example" in out
    dead = _run(db_url, "list", "--status", "dead")
    assert len(dead.splitlines()) == 1 and "21610" in dead
    assert _run(db_url, "list", "--kind", "email").count("email") == 1
    assert CITIZEN in _run(db_url, "list", "--show-numbers")


def test_show_tells_the_whole_story_masked(db_url, sent_and_dead):
    row = sent_and_dead["a"]
    out = _run(db_url, "show", str(row.id))
    assert f"#{row.id} sms to +1******0104: dead" in out and "21610" in out and "unsubscribed" in out
    assert CITIZEN not in out and "Your case number is 482-7153." in out
    sent = sent_and_dead["b"]
    assert sent.provider_id and sent.provider_id in _run(db_url, "show", str(sent.id))


def test_retry_brings_a_dead_row_back(db_url, app, sent_and_dead):
    dead = next(r for r in sent_and_dead.values() if r.status == "dead")
    out = _run(db_url, "retry", str(dead.id))
    assert out.startswith("1 row(s) back to pending")
    with Session(db.engine(app)) as s:
        row = store.get(s, dead.id)
    assert (row.status, row.attempts) == ("pending", 0)
    refused = CliRunner().invoke(cli, ["outbox", "retry", "--url", db_url])
    assert refused.exit_code != 0 and "--all-dead" in refused.output


def test_metrics_show_the_outbox_depth_by_kind_and_status(app, sent_and_dead):
    response = app.test_client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    text = response.get_data(as_text=True)
    assert 'ivr_outbox_messages{kind="sms",status="sent"} 1.0' in text
    assert 'ivr_outbox_messages{kind="sms",status="dead"} 1.0' in text
    assert 'ivr_outbox_messages{kind="email",status="pending"} 1.0' in text
    assert "ivr_outbox_oldest_waiting_seconds " in text
    assert "# TYPE ivr_outbox_deliveries_total counter" in text and "# TYPE ivr_outbox_send_seconds histogram" in text
    assert 'ivr_outbox_deliveries_total{kind="sms",result="dead"}' in text
    assert CITIZEN not in text
