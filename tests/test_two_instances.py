"""One call, its webhooks served alternately by two app instances on one database.

Call state lives in the database, so it must not matter which worker (or which restarted
process) gets which webhook. Runs on PostgreSQL (the production set-up) and on a shared
SQLite file.
"""
from __future__ import annotations

import urllib.parse
import xml.etree.ElementTree as ET
from datetime import datetime, timezone

import pytest
from twilio.request_validator import RequestValidator

from conftest import PUBLIC_URL, TEST_API_TOKEN, TEST_AUTH_TOKEN

pytestmark = pytest.mark.db
# A Wednesday, 11:00 in Chicago: every department is open.
OPEN_HOURS = datetime(2026, 6, 10, 16, 0, tzinfo=timezone.utc)
# What a caller says at each step of the conversation (the step is in the action URL).
ANSWERS = {"welcome": {"SpeechResult": "English", "Confidence": "0.9"},
           "ask": {"SpeechResult": "I want to report a pothole on Main Street", "Confidence": "0.92"},
           "confirm": {"SpeechResult": "yes", "Confidence": "0.9"}}
MAX_WEBHOOKS = 10


def signed_post(client, url: str, params: dict[str, str]):
    """POST `params` to `url` (absolute or path) with a valid X-Twilio-Signature."""
    absolute = urllib.parse.urljoin(PUBLIC_URL + "/", url)
    signature = RequestValidator(TEST_AUTH_TOKEN).compute_signature(absolute, params)
    return client.post(absolute[len(PUBLIC_URL):], data=params, headers={"X-Twilio-Signature": signature})


def next_webhook(twiml: ET.Element) -> tuple[str, dict[str, str]] | None:
    """The action Twilio would post after `twiml`, with the caller's answer; None at a Dial."""
    for verb in twiml:
        if verb.tag == "Gather":
            action = verb.get("action", "")
            step = urllib.parse.parse_qs(urllib.parse.urlsplit(action).query).get("step", [""])[0]
            return action, ANSWERS.get(step, {"Digits": "1"})
        if verb.tag == "Redirect":
            return (verb.text or "").strip(), {}
        if verb.tag in {"Dial", "Enqueue", "Hangup", "Record"}:
            return None
    return None


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
    instances = [make_app().test_client(), make_app().test_client()]
    call = {"CallSid": "CAtwoinstances0000000000000000001", "From": "+15551234567",
            "To": "+13125550100", "AccountSid": "AC" + "0" * 32}
    response = signed_post(instances[0], "/voice/incoming", {**call, "CallStatus": "ringing"})
    served_by = [0]
    for n in range(1, MAX_WEBHOOKS):
        assert response.status_code == 200, response.get_data(as_text=True)
        step = next_webhook(ET.fromstring(response.data))
        if step is None:
            break
        response = signed_post(instances[n % 2], step[0], {**call, "CallStatus": "in-progress", **step[1]})
        served_by.append(n % 2)
    else:
        pytest.fail("the call did not reach a Dial within %d webhooks" % MAX_WEBHOOKS)
    final = ET.fromstring(response.data)
    assert final.find("Dial") is not None and "+13125550101" in ET.tostring(final, encoding="unicode")
    assert set(served_by) == {0, 1}

    record = calls_record(instances[1], call["CallSid"])
    assert record["outcome"] == "transferred"
    assert record["from"] == "+15551234567"
    heard = [turn["heard"] for turn in record["turns"]]
    assert heard[:2] == ["English", "I want to report a pothole on Main Street"]
    assert len(heard) == len(served_by) - 1  # every answer, whichever instance took it, is recorded


def test_a_restart_mid_call_loses_nothing(make_app):
    call = {"CallSid": "CArestart000000000000000000000001", "From": "+15551234567",
            "To": "+13125550100", "AccountSid": "AC" + "0" * 32}
    first = make_app().test_client()
    response = signed_post(first, "/voice/incoming", {**call, "CallStatus": "ringing"})
    action, answer = next_webhook(ET.fromstring(response.data))
    response = signed_post(first, action, {**call, "CallStatus": "in-progress", **answer})
    action, answer = next_webhook(ET.fromstring(response.data))
    restarted = make_app().test_client()  # the old process is gone; a new one takes the next webhook
    response = signed_post(restarted, action, {**call, "CallStatus": "in-progress", **answer})
    assert response.status_code == 200
    dial = ET.fromstring(response.data).find("Dial")
    # The new process knew the caller had already chosen English and was at "ask": roads.
    assert dial is not None and dial.findtext("Number") == "+13125550101"
    record = calls_record(restarted, call["CallSid"])
    assert [t["step"] for t in record["turns"]] == ["welcome", "ask"]
    assert record["language"] == "en" and record["outcome"] == "transferred"


def calls_record(client, sid: str) -> dict:
    """The call's JSON record from the API."""
    response = client.get(f"/api/calls/{sid}", headers={"Authorization": f"Bearer {TEST_API_TOKEN}"})
    assert response.status_code == 200
    return response.get_json()
