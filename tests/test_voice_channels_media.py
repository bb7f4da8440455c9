"""After hours "report it now" over Media Streams with the production default engine (`auto`).

Every listening step of the report is a real websocket on a real threaded server carrying
synthesised speech (and keypad presses) in real-time μ-law frames into the real recogniser:
the problem, "report", the location, then star to hear the case number again and 1 to get it by
text. No wall-clock asserts.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Iterator

import pytest

from conftest import PUBLIC_URL, TEST_AUTH_TOKEN, live_media_server
from speechgen import spoken_pcm16
from ivr.store import db, history, service_requests
from ivr.store import outbox as outbox_rows
from ivr.telephony.simulator import FlaskTransport, SimulatedCall

pytestmark = [pytest.mark.speech, pytest.mark.timeout(600)]

NIGHT = datetime(2026, 3, 11, 3, 0, tzinfo=timezone.utc)      # Tuesday 22:00 in Chicago


@pytest.fixture
def app_config(app_config):
    app_config.update({
        "IVR_CAPTURE": "stream",
        "IVR_SPEECH_ENGINE": "auto",          # what production runs
        "IVR_SPEECH_ENGINE_ES": "twilio",     # only English is spoken here
        "IVR_DECODE_WAIT_MS": "30000",        # not about speed: a loaded machine must not say "say that again"
        "IVR_CLOCK": lambda: NIGHT,
    })
    return app_config


@pytest.fixture
def server(app) -> Iterator[str]:
    with live_media_server(app) as (url, _engine):
        yield url



def step_of(call: SimulatedCall) -> str:
    assert call.has("Connect"), f"the line should listen on a Media Stream: {call.verbs()}"
    return re.search(r"step=(\w+)", call.find("Connect").get("action") or "").group(1)


def turn(call: SimulatedCall, ws: str, *, words: str = "", keys: str = "") -> None:
    call.connect_stream(audio=spoken_pcm16(words) if words else b"", digits=keys, ws_base=ws, timeout_s=90)
    assert call.stream is not None and call.stream.closed, "the server never ended the turn"


def test_a_report_over_media_streams(app, client, server):
    call = SimulatedCall(FlaskTransport(client), token=TEST_AUTH_TOKEN, public_url=PUBLIC_URL, from_="+13125550123")
    call.call()
    turn(call, server, words="there is a huge pothole on Main Street")
    if step_of(call) == "confirm":
        turn(call, server, words="yes")
    assert step_of(call) == "after_hours"
    turn(call, server, words="I want to report it")
    assert step_of(call) == "report_location"
    turn(call, server, words="at the corner of Main Street and Elm Street")
    assert step_of(call) == "report_done"
    turn(call, server, words="repeat")            # said: the case number again
    assert step_of(call) == "report_done"
    with app.app_context():
        [request] = [r for r in service_requests.search(db.session(), limit=10) if r.call_sid == call.sid]
        record = history.call_record(db.session(), call.sid)
    assert request.channel == "voice" and request.department == "roads"
    assert request.address and "main" in request.address.lower()
    assert record["outcome"] == "reported"
    turn(call, server, keys="*")                 # star: the case number again
    assert step_of(call) == "report_done"
    turn(call, server, keys="1")                 # text it
    assert call.verbs()[-1] == "Hangup"
    with app.app_context():
        row = outbox_rows.by_key(db.session(), f"voice-case:{call.sid}")
        reasons = [t["decision"]["reason"] for t in history.call_record(db.session(), call.sid)["turns"]]
    # Each answer was understood as meant: by words (report, the place, repeat) and by keys.
    assert sum(r.startswith("caller asked to hear the case number again") for r in reasons) == 2, reasons
    assert any(r.startswith("caller chose to report") for r in reasons) and \
        any(r.startswith("location given") for r in reasons), reasons
    assert row is not None and request.case_number in row.payload["body"]
