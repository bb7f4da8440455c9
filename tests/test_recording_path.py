"""The recording path end to end: `<Record>` → /voice/recorded → download (local HTTP server,
Twilio basic auth) → recognise (real pocketsphinx on synthesised speech) → decide → TwiML."""
from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler
from typing import Iterator

import pytest
from twilio.request_validator import RequestValidator

from tests.conftest import PUBLIC_URL, TEST_AUTH_TOKEN
from tests.https_server import HTTPSServer, trust

ACCOUNT_SID = "AC" + "1" * 32
POTHOLE = "I want to report a pothole on Main Street"


class RecordingServer:
    """Serves WAV bytes by path like api.twilio.com does, and remembers the auth it was sent."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.auth: list[str | None] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                owner.auth.append(self.headers.get("Authorization"))
                body = owner.files.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "audio/x-wav")
                self.end_headers()
                if body is not None:
                    self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        # HTTPS like api.twilio.com: recordings are fetched over https from one host only.
        self.server = HTTPSServer(Handler)
        self.host = f"127.0.0.1:{self.server.port}"
        self.base = f"https://{self.host}"


@pytest.fixture
def recordings(monkeypatch, tmp_path) -> Iterator[RecordingServer]:
    trust(monkeypatch, tmp_path)
    server = RecordingServer()
    server.server.start()
    yield server
    server.server.stop()


@pytest.fixture
def app_config(app_config, recordings):
    app_config.update({"IVR_CAPTURE": "record", "IVR_SPEECH_ENGINE_EN": "pocketsphinx",
                       "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "IVR_RECORDING_HOST": recordings.host})
    return app_config


def signed_post(client, path: str, form: dict[str, str]):
    """POST as Twilio does: form data signed over the public URL."""
    signature = RequestValidator(TEST_AUTH_TOKEN).compute_signature(PUBLIC_URL + path, form)
    return client.post(path, data=form, headers={"X-Twilio-Signature": signature})


def start_call(client, sid: str) -> None:
    form = {"CallSid": sid, "AccountSid": ACCOUNT_SID, "From": "+15551234567", "To": "+15557654321",
            "CallStatus": "ringing"}
    assert signed_post(client, "/voice/incoming", form).status_code == 200


def recorded(client, sid: str, url: str):
    form = {"CallSid": sid, "AccountSid": ACCOUNT_SID, "RecordingUrl": url,
            "RecordingDuration": "3", "RecordingSid": "RE" + "2" * 32}
    return signed_post(client, "/voice/recorded?step=ask&n=1", form)


def twiml(response) -> ET.Element:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype in ("text/xml", "application/xml")
    root = ET.fromstring(response.get_data())
    assert root.tag == "Response"
    return root


def call_record(app, sid: str) -> dict:
    from ivr.store import db, history

    with app.app_context():
        return history.call_record(db.session(), sid)


@pytest.mark.speech
def test_recorded_speech_is_downloaded_recognised_and_decided(app, client, recordings):
    from tests.speechgen import synthesize_phone_audio

    recordings.files["/2010-04-01/Accounts/AC1/Recordings/RE1"] = synthesize_phone_audio(POTHOLE).read_bytes()
    start_call(client, "CArec1")
    root = twiml(recorded(client, "CArec1", recordings.base + "/2010-04-01/Accounts/AC1/Recordings/RE1"))
    assert len(root), "empty TwiML after a recognised answer"
    expected = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{TEST_AUTH_TOKEN}".encode()).decode()
    assert recordings.auth == [expected]
    record = call_record(app, "CArec1")
    heard = [t for t in record["turns"] if t["heard"]]
    assert heard and "pothole" in heard[-1]["heard"].lower()
    assert '"roads"' in json.dumps(heard[-1]["classification"])
    assert [r["url"] for r in record["recordings"]] == [recordings.base + "/2010-04-01/Accounts/AC1/Recordings/RE1"]


@pytest.mark.parametrize("path", ["/missing", "/not-a-wav"])
def test_unusable_recording_is_no_input_not_an_error(app, client, recordings, path):
    recordings.files["/not-a-wav"] = b"<html>oops</html>"
    start_call(client, "CArec2")
    root = twiml(recorded(client, "CArec2", recordings.base + path))
    assert len(root), "a failed download must still lead somewhere (reprompt or menu)"
    record = call_record(app, "CArec2")
    assert not any(t["heard"] for t in record["turns"])


def test_unreachable_recording_host_is_no_input(app, client):
    start_call(client, "CArec3")
    root = twiml(recorded(client, "CArec3", "http://127.0.0.1:9/nothing-listens-here"))
    assert len(root)


def test_oversized_recording_is_refused(app, client, recordings, monkeypatch):
    from ivr.web.voice import recording

    monkeypatch.setattr(recording, "MAX_RECORDING_BYTES", 1000)
    recordings.files["/big"] = b"RIFF" + bytes(5000)
    start_call(client, "CArec4")
    twiml(recorded(client, "CArec4", recordings.base + "/big"))
    record = call_record(app, "CArec4")
    assert not any(t["heard"] for t in record["turns"])


def test_unsigned_recording_callback_is_refused(client, recordings):
    response = client.post("/voice/recorded", data={"CallSid": "CAx", "RecordingUrl": recordings.base + "/x"})
    assert response.status_code == 403
    assert recordings.auth == []          # nothing was fetched for a forged request


@pytest.mark.speech
def test_the_emergency_watch_reaches_the_decision_on_the_recording_path(app, client, recordings):
    """An emergency the 1-best mishears ("… down and parking") still reaches 911, via the watch."""
    from tests.speechgen import synthesize_phone_audio

    said = "a power line is down and sparking"
    recordings.files["/RE9"] = synthesize_phone_audio(said).read_bytes()
    start_call(client, "CArec9")
    root = twiml(recorded(client, "CArec9", recordings.base + "/RE9"))
    dialled = [el.text.strip() for el in root.iter("Number")] + [el.text.strip() for el in root.iter("Dial") if el.text]
    assert any(d.replace(" ", "").endswith("3125550199") for d in dialled), ET.tostring(root)
    decision = [t for t in call_record(app, "CArec9")["turns"] if t["heard"]][-1]["decision"]
    assert decision["kind"] == "emergency"


@pytest.mark.speech
def test_a_confirm_step_recording_is_recognised_with_the_yes_no_grammar(app, client, recordings):
    from tests.speechgen import synthesize_phone_audio

    recordings.files["/RE8"] = synthesize_phone_audio("no that's wrong").read_bytes()
    start_call(client, "CArec8")
    form = {"CallSid": "CArec8", "AccountSid": ACCOUNT_SID, "RecordingUrl": recordings.base + "/RE8"}
    twiml(signed_post(client, "/voice/recorded?step=confirm&n=1", form))
    heard = [t["heard"] for t in call_record(app, "CArec8")["turns"] if t["heard"]]
    assert heard == ["no that's wrong"]
