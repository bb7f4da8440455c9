"""The recording path end to end: `<Record>` → /voice/recorded → download (local HTTP server,
Twilio basic auth) → recognise (real pocketsphinx on synthesised speech) → decide → TwiML."""
from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler
from typing import Iterator

import pytest

from conftest import TEST_AUTH_TOKEN, signed_post, simulated_call
from https_server import HTTPSServer, trust

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


def start_call(client, sid: str) -> None:
    """A call that has chosen English and is at the "what are you calling about" step."""
    call = simulated_call(client, sid=sid, from_="+15551234567", to="+15557654321")
    assert call.call().status_code == 200
    assert call.press("1").status_code == 200 and call.find("Record") is not None


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


def assert_no_input(app, sid: str, root: ET.Element) -> None:
    """The line treated the answer as no input: a turn with nothing heard, decided as "no input"
    (ask again), and TwiML that listens again. A crash would instead roll everything back and
    answer with the operator rescue (a <Dial>, no turn stored)."""
    assert root.find(".//Dial") is None, ET.tostring(root, encoding="unicode")
    assert root.find(".//Record") is not None, "the caller is asked again, on the recording path"
    turns = call_record(app, sid)["turns"]
    assert [turn["step"] for turn in turns] == ["welcome", "ask"]      # English was chosen first
    assert turns[-1]["heard"] is None and turns[-1]["digits"] is None
    assert "no input" in turns[-1]["decision"]["reason"]


def call_record(app, sid: str) -> dict:
    from ivr.store import db, history

    with app.app_context():
        return history.call_record(db.session(), sid)


@pytest.mark.speech
def test_recorded_speech_is_downloaded_recognised_and_decided(app, client, recordings):
    from speechgen import synthesize_phone_audio

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
def test_unusable_recording_is_no_input_not_an_error(app, client, recordings, path, caplog):
    recordings.files["/not-a-wav"] = b"<html>oops</html>"
    start_call(client, "CArec2")
    with caplog.at_level("WARNING"):
        root = twiml(recorded(client, "CArec2", recordings.base + path))
    assert_no_input(app, "CArec2", root)
    assert any("treating as no input" in r.getMessage() for r in caplog.records)
    assert not any("webhook" in r.getMessage() and "failed" in r.getMessage() for r in caplog.records)


def test_unreachable_recording_host_is_no_input(app, client):
    start_call(client, "CArec3")
    root = twiml(recorded(client, "CArec3", "https://127.0.0.1:9/nothing-listens-here"))
    assert_no_input(app, "CArec3", root)


def test_oversized_recording_is_refused_as_no_input(app, client, recordings, monkeypatch, caplog):
    """A real WAV (speech, then minutes of line noise) bigger than the limit is not decoded."""
    from speechgen import synthesize_phone_audio

    from ivr.speech.audio import Audio, parse_wav, wav_bytes
    from ivr.web.voice import recording

    speech = parse_wav(synthesize_phone_audio(POTHOLE, ulaw=False).read_bytes())
    # Twilio's recording format (8 kHz 16-bit PCM): the answer, then 5 minutes of an open line.
    big = wav_bytes(Audio(speech.pcm16 + bytes(2 * speech.sample_rate * 60 * 5), speech.sample_rate))
    assert len(big) > recording.MAX_RECORDING_BYTES and parse_wav(big).sample_rate == speech.sample_rate
    recordings.files["/big"] = big
    start_call(client, "CArec4")
    with caplog.at_level("WARNING"):
        root = twiml(recorded(client, "CArec4", recordings.base + "/big"))
    assert_no_input(app, "CArec4", root)
    assert any("larger than" in r.getMessage() for r in caplog.records)


def test_a_crash_in_recognition_is_told_apart_from_no_input(app, client, recordings, monkeypatch):
    """A bug (not a bad recording) goes to the rescue: the operator, nothing half-stored."""
    from speechgen import synthesize_phone_audio

    from ivr.web.voice import recording

    def broken(*_args, **_kwargs):
        raise ZeroDivisionError("a bug in recognition")

    monkeypatch.setattr(recording, "transcribe", broken)
    recordings.files["/ok"] = synthesize_phone_audio(POTHOLE).read_bytes()
    start_call(client, "CArec5")
    root = twiml(recorded(client, "CArec5", recordings.base + "/ok"))
    assert root.find(".//Dial") is not None            # straight to a person
    # The failed webhook stored nothing: only the language choice before it is there.
    assert [turn["step"] for turn in call_record(app, "CArec5")["turns"]] == ["welcome"]


def test_unsigned_recording_callback_is_refused(client, recordings):
    response = client.post("/voice/recorded", data={"CallSid": "CAx", "RecordingUrl": recordings.base + "/x"})
    assert response.status_code == 403
    assert recordings.auth == []          # nothing was fetched for a forged request


@pytest.mark.speech
def test_the_emergency_watch_reaches_the_decision_on_the_recording_path(app, client, recordings):
    """An emergency the 1-best mishears ("… down and parking") still reaches 911, via the watch."""
    from speechgen import synthesize_phone_audio

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
    from speechgen import synthesize_phone_audio

    recordings.files["/RE8"] = synthesize_phone_audio("no that's wrong").read_bytes()
    start_call(client, "CArec8")
    form = {"CallSid": "CArec8", "AccountSid": ACCOUNT_SID, "RecordingUrl": recordings.base + "/RE8"}
    twiml(signed_post(client, "/voice/recorded?step=confirm&n=1", form))
    heard = [t["heard"] for t in call_record(app, "CArec8")["turns"] if t["heard"]]
    assert heard == ["no that's wrong"]


@pytest.mark.speech
def test_a_retried_recording_is_answered_from_storage_without_downloading_it_again(app, client, recordings):
    from speechgen import synthesize_phone_audio

    start_call(client, "CArec9")
    recordings.files["/2010-04-01/Accounts/AC1/Recordings/RE9"] = synthesize_phone_audio(POTHOLE).read_bytes()
    url = recordings.base + "/2010-04-01/Accounts/AC1/Recordings/RE9"
    first = recorded(client, "CArec9", url)
    again = recorded(client, "CArec9", url)        # Twilio retries the same request
    assert again.get_data() == first.get_data()
    assert len(recordings.auth) == 1               # fetched (and recognised) once
    record = call_record(app, "CArec9")
    assert [r["url"] for r in record["recordings"]] == [url]
    assert [t["step"] for t in record["turns"]] == ["welcome", "ask"]


def test_no_transaction_is_held_while_the_recording_is_downloaded(app, client, recordings, monkeypatch):
    """The download and recognition take seconds: the read that found the call's state must not
    keep a database transaction (on PostgreSQL, a pooled connection idle in a transaction) open
    meanwhile."""
    from ivr.store import db
    from ivr.web.voice import recording

    seen: list[bool] = []
    real_fetch = recording.fetch_recording

    def fetch(url, **kwargs):
        seen.append(db.session().in_transaction())
        return real_fetch(url, **kwargs)

    monkeypatch.setattr(recording, "fetch_recording", fetch)
    start_call(client, "CArecTx")
    root = twiml(recorded(client, "CArecTx", recordings.base + "/missing"))
    assert seen == [False]
    assert_no_input(app, "CArecTx", root)   # and the turn is still stored with the webhook's writes
