"""`/voice/stream` end to end: a fake Twilio speaking the Media Streams protocol to a real server.

Real synthesised speech (piper, cached) goes through the real embedded recogniser (pocketsphinx)
at real-time pace. Kept to a handful of utterances so the file runs in well under a minute.
"""
from __future__ import annotations

import threading
import time
from typing import Iterator

import pytest
from websockets.exceptions import InvalidStatus
from werkzeug.serving import make_server

from tests.conftest import PUBLIC_URL, TEST_AUTH_TOKEN
from tests.fake_twilio_stream import FakeTwilioStream, last_voice_ms

SIGNED_URL = PUBLIC_URL.replace("https", "wss") + "/voice/stream"
POTHOLE = "I want to report a pothole on Main Street"

pytestmark = pytest.mark.speech


@pytest.fixture
def app_config(app_config):
    app_config.update({
        "IVR_CAPTURE": "stream",
        "IVR_SPEECH_ENGINE_EN": "pocketsphinx",
        "IVR_ENDPOINT_NO_INPUT_MS": "1500",   # a quick "silence" test
    })
    return app_config


@pytest.fixture
def server(app) -> Iterator[str]:
    """The app on a real threaded HTTP server on localhost; yields its ws:// URL."""
    from ivr.speech.service import speech_service

    with app.app_context():  # load the model now, not inside the first (timed) turn
        speech_service().engine_for("en").warm()
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"ws://127.0.0.1:{httpd.server_port}/voice/stream"
    httpd.shutdown()
    thread.join(timeout=5)


def utterance(text: str) -> bytes:
    """8 kHz PCM16 of `text` as a caller says it (cached after the first run)."""
    from tests.speechgen import phone_pcm, synthesize_phone_audio

    return phone_pcm(synthesize_phone_audio(text)).pcm16


def call(server: str, sid: str, **params: str) -> FakeTwilioStream:
    parameters = {"step": "ask", "n": "1", "language": "en", **params}
    return FakeTwilioStream(server, call_sid=sid, parameters=parameters,
                            auth_token=TEST_AUTH_TOKEN, signed_url=SIGNED_URL)


def pending_turn(app, sid: str, wait_s: float = 3.0):
    """The turn the stream parked for `sid` (polls: a dropped socket is stored asynchronously)."""
    from ivr.store import calls, db

    deadline = time.monotonic() + wait_s
    while True:
        with app.app_context():
            turn = calls.take_pending_turn(db.session(), sid)
            db.session().commit()
        if turn is not None or time.monotonic() > deadline:
            return turn
        time.sleep(0.05)


def wait_for_prompt(twilio: FakeTwilioStream, wait_s: float = 5.0) -> None:
    """Send line silence until the prompt audio starts arriving (first render may take a moment)."""
    deadline = time.monotonic() + wait_s
    while twilio.heard.media_bytes == 0 and time.monotonic() < deadline:
        twilio.send_silence(100)
    assert twilio.heard.media_bytes > 0, "the prompt was not streamed to the caller"


def department_of(app, text: str) -> str | None:
    from ivr.routing.source import current_classifier

    with app.app_context():
        top = current_classifier().classify(text, "en").top
    return top.department if top else None


def test_unsigned_upgrade_is_refused_before_accepting(server):
    with pytest.raises(InvalidStatus) as refused:
        with FakeTwilioStream(server, call_sid="CAbad", parameters={}, auth_token="wrong-token",
                              signed_url=SIGNED_URL):
            pass
    assert refused.value.response.status_code == 403


def test_speech_routes_to_the_right_department(app, server):
    audio = utterance(POTHOLE)
    with call(server, "CAspeech1") as twilio:
        twilio.send_audio(audio)
        twilio.send_silence(2000)
        assert twilio.wait_closed(3), "server never closed the stream after the caller stopped"
    turn = pending_turn(app, "CAspeech1")
    assert turn is not None and turn.speech, f"no speech stored: {turn}"
    assert "pothole" in turn.speech.lower()
    assert department_of(app, turn.speech) == "roads"


def test_stream_closes_soon_after_the_last_word(app, server):
    audio = utterance(POTHOLE)
    with call(server, "CAlatency") as twilio:
        twilio.send_audio(audio)
        twilio.send_silence(2000)
        assert twilio.wait_closed(3)
    # The caller's last word ends last_voice_ms into the audio; the stream must not wait for
    # Vosk-style 500 ms+ silence plus a full second of padding (a loose bound; bench/ measures).
    last_word_at = twilio.frame_times[last_voice_ms(audio) // 20 - 1]
    assert twilio.heard.closed_at - last_word_at < 1.0


def test_speech_during_the_prompt_clears_it(app, server):
    audio = utterance(POTHOLE)
    with call(server, "CAbargein", prompt="ask") as twilio:
        wait_for_prompt(twilio)
        twilio.send_audio(audio)
        twilio.send_silence(2000)
        assert twilio.wait_closed(3)
    assert twilio.heard.clears, "no clear sent when the caller talked over the prompt"
    assert twilio.heard.clears[0] < twilio.frame_times[last_voice_ms(audio) // 20 + 15]
    assert "prompt-end" in twilio.heard.marks_echoed
    turn = pending_turn(app, "CAbargein")
    assert turn is not None and turn.speech and "pothole" in turn.speech.lower()


def test_keypad_during_the_stream(app, server):
    with call(server, "CAkeypad", prompt="ask") as twilio:
        wait_for_prompt(twilio)
        twilio.press("0")
        assert twilio.wait_closed(3)
    assert twilio.heard.clears, "the prompt kept playing after a key press"
    turn = pending_turn(app, "CAkeypad")
    assert turn is not None and turn.digits == "0"


def test_silence_is_a_no_input_turn(app, server):
    with call(server, "CAsilent") as twilio:
        twilio.send_silence(3000)
        assert twilio.closed
    turn = pending_turn(app, "CAsilent")
    assert turn is not None
    assert (turn.speech, turn.digits) == (None, None)


def test_socket_dropped_mid_utterance_keeps_what_was_heard(app, server):
    audio = utterance(POTHOLE)
    with call(server, "CAdropped") as twilio:
        twilio.send_audio(audio[: len(audio) * 3 // 8 * 2])   # ¾, whole samples
        twilio.drop()
    turn = pending_turn(app, "CAdropped")
    assert turn is not None, "nothing stored for a dropped stream"
    assert turn.speech and "pothole" in turn.speech.lower()
