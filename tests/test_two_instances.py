"""One call, its webhooks served alternately by two app instances on one database.

Call state lives in the database, so it must not matter which worker (or which restarted
process) gets which webhook. Runs on PostgreSQL (the production set-up) and on a shared
SQLite file.
"""
from __future__ import annotations

import urllib.parse
from datetime import datetime, timezone

import pytest

from conftest import PUBLIC_URL, TEST_AUTH_TOKEN
from ivr.telephony.simulator import FlaskTransport, SimulatedCall

pytestmark = pytest.mark.db
# A Wednesday, 11:00 in Chicago: every department is open.
OPEN_HOURS = datetime(2026, 6, 10, 16, 0, tzinfo=timezone.utc)
# What a caller says at each step of the conversation (the step is in the action URL).
ANSWERS = {"welcome": "English", "ask": "I want to report a pothole on Main Street", "confirm": "yes"}
MAX_WEBHOOKS = 10


def answer_by_step(kind: str, call: SimulatedCall) -> str:
    """What the caller says at the step named in the listening <Gather>'s action URL."""
    action = call.find("Gather").get("action", "")
    step = urllib.parse.parse_qs(urllib.parse.urlsplit(action).query).get("step", [""])[0]
    return ANSWERS.get(step, "1")


class Alternating:
    """A transport that hands each webhook to the next app instance in turn."""

    def __init__(self, clients) -> None:
        self.instances = [FlaskTransport(client) for client in clients]
        self.served_by: list[int] = []

    def request(self, method, url, form, headers):
        n = len(self.served_by) % len(self.instances)
        self.served_by.append(n)
        return self.instances[n].request(method, url, form, headers)


@pytest.fixture
def make_app(app_config, db_url):
    """Build app instances sharing `db_url` (each with its own engine and connection pool)."""
    from ivr import create_app
    from ivr.store import db

    built = []

    def make():
        app = create_app({**app_config, "IVR_DATABASE_URL": db_url, "IVR_CLOCK": lambda: OPEN_HOURS})
        built.append(app)
        return app

    yield make
    for app in built:
        db.engine(app).dispose()


def test_webhooks_alternate_between_instances(make_app):
    transport = Alternating([make_app().test_client(), make_app().test_client()])
    call = SimulatedCall(transport, token=TEST_AUTH_TOKEN, public_url=PUBLIC_URL, from_="+15551234567",
                         to="+13125550100")
    dialled: list[str] = []
    ended = call.run(answer_by_step, max_steps=MAX_WEBHOOKS,
                     on_line=lambda who, words: dialled.append(words) if who == "dial" else None)
    assert ended == "connected to +13125550101" and dialled == ["+13125550101"]
    assert set(transport.served_by) == {0, 1}

    record = calls_record(make_app(), call.sid)
    assert record["outcome"] == "transferred"
    assert record["from"] == "+15551234567"
    heard = [turn["heard"] for turn in record["turns"]]
    # Every answer, whichever instance took it, is recorded once.
    assert heard == ["English", "I want to report a pothole on Main Street"]


def test_a_restart_mid_call_loses_nothing(make_app):
    call = SimulatedCall(FlaskTransport(make_app().test_client()), token=TEST_AUTH_TOKEN,
                         public_url=PUBLIC_URL, from_="+15551234567", to="+13125550100")
    call.call()
    call.say("English")
    restarted = make_app()  # the old process is gone; a new one takes the next webhook
    call.transport = FlaskTransport(restarted.test_client())
    response = call.say("I want to report a pothole on Main Street")
    assert response.status_code == 200
    # The new process knew the caller had already chosen English and was at "ask": roads.
    assert call.find("Dial").findtext("Number") == "+13125550101"
    record = calls_record(restarted, call.sid)
    assert [t["step"] for t in record["turns"]] == ["welcome", "ask"]
    assert record["language"] == "en" and record["outcome"] == "transferred"


def calls_record(app, sid: str) -> dict:
    """The call as stored (what the API and `ivr calls` read)."""
    from ivr.store import db, history

    with app.app_context():
        return history.call_record(db.session(), sid)
