"""Topic alerts end to end: subscribe by text, `ivr alerts send`, the outbox draining to a fake Twilio,
STOP honoured at send time, rate-limited, re-runs never double-send, and texters told about it first."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import update

from conftest import PUBLIC_URL
from fake_twilio_rest import ACCOUNT_SID, AUTH_TOKEN, FakeTwilioRest
from ivr.cli import cli
from ivr.outbox import worker as outbox_worker
from ivr.store import alerts, db
from ivr.store import outbox as outbox_store
from ivr.store.models import utcnow
from ivr.telephony.simulator import FlaskTransport, SimulatedTexter

pytestmark = pytest.mark.db

CITY = "+13125550311"
ANA, BEA, CARL, DEE = "+13125550101", "+13125550102", "+13125550103", "+13125550104"
MESSAGE = "Water main break on Elm Street; crews are on site."
MENSAJE = "Rotura de tubería en la calle Elm; hay equipos trabajando."


@pytest.fixture
def app_config(app_config, db_url):
    return {**app_config, "IVR_TTS": "off", "IVR_DATABASE_URL": db_url, "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "IVR_SMS_FROM": CITY}


@pytest.fixture
def app(app_config):
    from ivr import create_app

    app = create_app(app_config)
    yield app
    db.engine(app).dispose()


@pytest.fixture
def twilio(app):
    with FakeTwilioRest() as fake:
        app.config["IVR_TWILIO_API_URL"] = fake.url
        yield fake


def texter(client, phone: str) -> SimulatedTexter:
    return SimulatedTexter(FlaskTransport(client), token=AUTH_TOKEN, public_url=PUBLIC_URL, from_=phone, to=CITY)


def ivr(app, *args: str):
    result = CliRunner().invoke(cli, list(args), env={"IVR_DATABASE_URL": app.config["IVR_DATABASE_URL"]},
                                catch_exceptions=False)
    return result


def outbox_rows(app):
    with app.app_context():
        return sorted(outbox_store.search(db.session(), limit=1000), key=lambda r: r.id)


def make_due(app):
    with app.app_context():
        s = db.session()
        s.execute(update(outbox_store.OutboxMessage).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
        s.commit()


def test_an_alert_reaches_subscribers_once_in_their_language_and_stop_is_honoured(app, client, twilio):
    assert "alerts about water" in texter(client, ANA).text("SUBSCRIBE WATER")
    assert "sobre servicio de agua" in texter(client, BEA).text("SUSCRIBIR AGUA")
    texter(client, CARL).text("subscribe sewer")            # a keyword of the water topic
    texter(client, DEE).text("SUBSCRIBE WATER")
    texter(client, DEE).text("STOP")                         # opted out before: no text at all
    sent = ivr(app, "alerts", "send", "water", "--message", MESSAGE, "--message-es", MENSAJE, "--until", "2h")
    assert sent.exit_code == 0, sent.output
    assert "3 texts queued at 1/s" in sent.output and "water_main_break" in sent.output
    assert "555" not in sent.output                          # no numbers printed
    rows = outbox_rows(app)
    assert [r.target for r in rows] == [ANA, BEA, CARL] and all(r.key.startswith("alert:") for r in rows)
    assert all(ANA not in r.key for r in rows)               # keys carry a hash, not the number
    # Rate-limited: one text per second, spread with not_before.
    assert rows[1].next_attempt_at - rows[0].next_attempt_at >= timedelta(seconds=0.99)
    assert rows[2].next_attempt_at - rows[1].next_attempt_at >= timedelta(seconds=0.99)
    texter(client, CARL).text("STOP")                        # STOP while the alert drains: honoured at send time
    outbox_worker.drain(app)
    make_due(app)
    outbox_worker.drain(app)
    delivered = {m["To"]: m["Body"] for m in twilio.messages}
    assert set(delivered) == {ANA, BEA}
    assert delivered[ANA] == (f"City 311 alert, water and sewer service: {MESSAGE} Reply UNSUBSCRIBE WATER to end "
                              "these alerts, STOP for all texts.")
    assert MENSAJE in delivered[BEA] and "CANCELAR AGUA" in delivered[BEA]
    [alert] = json.loads(ivr(app, "alerts", "list", "--json").output)["alerts"]
    assert alert["delivery"] == {"sent": 2, "dead": 1} and alert["texts_queued"] == 3
    # A re-run texts nobody twice; a new subscriber gets it on resend.
    again = ivr(app, "alerts", "send", "water", "--message", MESSAGE, "--message-es", MENSAJE)
    assert again.exit_code == 1 and "already active" in again.output
    assert "0 more texts queued" in ivr(app, "alerts", "resend", str(alert["id"])).output
    texter(client, "+13125550105").text("SUBSCRIBE WATER")
    assert "1 more text queued" in ivr(app, "alerts", "resend", str(alert["id"])).output
    make_due(app)
    outbox_worker.drain(app)
    assert len(twilio.messages) == 3


class KeptAlertsClock:
    """The clock of the alerts each app keeps (`ivr.store.alerts`), moved by the test. The CLI works
    through its own engine, like another process: what it sends or ends reaches this app's texters
    and callers once the alerts the app keeps are ACTIVE_ALERTS_TTL_S old."""

    def __init__(self, monkeypatch) -> None:
        self.now = 1000.0
        monkeypatch.setattr(alerts, "_clock", lambda: self.now)

    def expire(self) -> None:
        self.now += alerts.ACTIVE_ALERTS_TTL_S


def test_a_texter_reporting_the_topic_hears_the_alert_first_and_it_is_counted(app, client, monkeypatch):
    kept = KeptAlertsClock(monkeypatch)
    assert ivr(app, "alerts", "send", "water", "--message", MESSAGE).exit_code == 0
    reply = texter(client, ANA).text("water main break at 12 Elm St")
    assert f"City notice: {MESSAGE}" in reply and "Case" in reply
    assert "City notice" not in texter(client, BEA).text("pothole at 120 Main St")   # another topic
    with app.app_context():
        [alert] = alerts.list_alerts(db.session())
        assert alert.heard == {"voice": 0, "sms": 1}
    ended = ivr(app, "alerts", "end", str(alert.id))
    assert ended.exit_code == 0 and "heard by 0 callers and 1 texters" in ended.output
    assert "City notice" in texter(client, CARL).text("water main break at 14 Elm St")   # kept a moment
    kept.expire()
    assert "City notice" not in texter(client, DEE).text("water main break at 16 Elm St")


def test_send_refuses_an_unknown_topic_and_a_past_end(app):
    unknown = ivr(app, "alerts", "send", "volcanoes", "--message", "Lava.")
    assert unknown.exit_code == 1 and "no topic 'volcanoes'" in unknown.output and "water" in unknown.output
    bad = ivr(app, "alerts", "send", "water", "--message", "x", "--until", "yesterday-ish")
    assert bad.exit_code == 2 and "--until" in bad.output
