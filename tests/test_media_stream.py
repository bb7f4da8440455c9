"""`/voice/stream` end to end: a fake Twilio speaking the Media Streams protocol to a real server.

Real synthesised speech (piper, cached) goes through the real embedded recogniser (pocketsphinx)
at real-time pace. Kept to a handful of utterances so the file runs in well under a minute.
"""
from __future__ import annotations

import json
import threading
import time
import xml.etree.ElementTree as ET
from typing import Iterator

import pytest
from websockets.exceptions import InvalidStatus
from werkzeug.serving import make_server

from conftest import PUBLIC_URL, TEST_AUTH_TOKEN, signed_post
from ivr.prompts import words_in_url
from ivr.telephony.simulator import MediaStream
from speechgen import last_voice_ms

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
    from ivr import prompts
    from ivr.prompts import serving
    from ivr.speech.service import speech_service

    with app.app_context():  # load the model now, not inside the first (timed) turn
        speech_service().engine_for("en").warm()
        # The prompt these calls stream, rendered ahead as `make run` (ivr prompts build) does.
        serving.prompt_audio().render(prompts.text("ask", "en"), "en")
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"ws://127.0.0.1:{httpd.server_port}/voice/stream"
    httpd.shutdown()
    thread.join(timeout=5)


def utterance(text: str) -> bytes:
    """8 kHz PCM16 of `text` as a caller says it (cached after the first run)."""
    from speechgen import phone_pcm, synthesize_phone_audio

    return phone_pcm(synthesize_phone_audio(text)).pcm16


def call(server: str, sid: str, **params: str) -> MediaStream:
    parameters = {"step": "ask", "n": "1", "language": "en", **params}
    return MediaStream(server, call_sid=sid, parameters=parameters,
                       auth_token=TEST_AUTH_TOKEN, signed_url=SIGNED_URL)


def pending_turn(app, sid: str, wait_s: float = 3.0):
    """The turn the stream parked for `sid` (polls: a dropped socket is stored asynchronously)."""
    from ivr.store import calls, db

    deadline = time.monotonic() + wait_s
    while True:
        with app.app_context():
            turn = calls.pending_turn(db.session(), sid)
        if turn is not None or time.monotonic() > deadline:
            return turn
        time.sleep(0.05)


def wait_for_prompt(twilio: MediaStream, wait_s: float = 5.0) -> None:
    """Send line silence until the prompt audio starts arriving (first render may take a moment)."""
    deadline = time.monotonic() + wait_s
    while twilio.heard.media_bytes == 0 and time.monotonic() < deadline:
        twilio.send_silence(100)
    assert twilio.heard.media_bytes > 0, "the prompt was not streamed to the caller"


def stream_turn_event(app, sid: str) -> dict:
    from ivr.store import db, history

    with app.app_context():
        events = history.call_record(db.session(), sid)["events"]
    return next(e["detail"] for e in events if e["kind"] == "stream_turn")


def department_of(app, text: str) -> str | None:
    from ivr.rules_source import current_classifier

    with app.app_context():
        top = current_classifier().classify(text, "en").top
    return top.department if top else None


def test_unsigned_upgrade_is_refused_before_accepting(server):
    with pytest.raises(InvalidStatus) as refused:
        with MediaStream(server, call_sid="CAbad", parameters={}, auth_token="wrong-token",
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


def test_turn_ends_on_the_callers_pause_not_a_long_timeout(app, server):
    audio = utterance(POTHOLE)
    with call(server, "CAendpoint") as twilio:
        twilio.send_audio(audio)
        twilio.send_silence(2000)
        assert twilio.wait_closed(3)
    # Measured in audio time (frames the server had received), so it does not depend on load;
    # the wall-clock latency is bench/turn_latency.py's job.
    detail = stream_turn_event(app, "CAendpoint")
    assert detail["reason"] in ("early", "silence")
    from ivr.speech.endpointing import EndpointConfig

    assert detail["heard_ms"] - last_voice_ms(audio) <= EndpointConfig().trailing_silence_ms + 60


def test_speech_during_the_prompt_clears_it(app, server):
    audio = utterance(POTHOLE)
    with call(server, "CAbargein", prompt="ask") as twilio:
        wait_for_prompt(twilio)
        twilio.send_audio(audio)
        twilio.send_silence(2000)
        assert twilio.wait_closed(3)
    assert twilio.heard.clears, "no clear sent when the caller talked over the prompt"
    # Order, not time (tests never time anything; bench/turn_latency.py does): the prompt was
    # cleared while the stream was still open, i.e. while the caller was being heard.
    assert twilio.heard.closed_at is not None and twilio.heard.clears[0] <= twilio.heard.closed_at
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
        assert twilio.wait_closed(3)   # the server ends the turn on its own (no-input timeout)
    turn = pending_turn(app, "CAsilent")
    assert turn is not None
    assert (turn.speech, turn.digits) == (None, None)


def test_closing_the_stream_leads_to_the_decision(app, client, server):
    """What Twilio does next: fetch the <Connect action>, which decides on the parked turn."""
    form = {"CallSid": "CAnext", "From": "+15551234567", "To": "+15557654321"}
    assert signed_post(client, "/voice/incoming", form).status_code == 200
    with call(server, "CAnext", step="welcome") as twilio:
        twilio.send_audio(utterance(POTHOLE))
        twilio.send_silence(2000)
        assert twilio.wait_closed(3)
    answer = signed_post(client, "/voice/turn?step=welcome&n=1", {"CallSid": "CAnext"})
    assert answer.status_code == 200
    assert ET.fromstring(answer.get_data()).tag == "Response"
    from ivr.store import db, history

    with app.app_context():
        record = history.call_record(db.session(), "CAnext")
    heard = record["turns"][-1]
    assert heard["heard"] and "pothole" in heard["heard"].lower()
    assert '"roads"' in json.dumps(heard["classification"])


def test_socket_dropped_mid_utterance_keeps_what_was_heard(app, server):
    audio = utterance(POTHOLE)
    with call(server, "CAdropped") as twilio:
        twilio.send_audio(audio[: len(audio) * 3 // 8 * 2])   # ¾, whole samples
        twilio.drop()
    turn = pending_turn(app, "CAdropped")
    assert turn is not None, "nothing stored for a dropped stream"
    assert turn.speech and "pothole" in turn.speech.lower()


@pytest.mark.parametrize("said, step", [("yes", "confirm"), ("no that's wrong", "confirm"), ("no", "callback")])
def test_yes_no_steps_listen_with_the_yes_no_grammar(app, server, said, step):
    """At a yes/no question the recogniser may only answer with the grammar's phrases."""
    from ivr.lang import builtin
    from ivr.routing.classify import interpret_yes_no
    from ivr.speech.grammars import load_grammar

    sid = f"CAgrammar{step}{len(said)}"
    with call(server, sid, step=step) as twilio:
        twilio.send_audio(utterance(said))
        twilio.send_silence(2000)
        assert twilio.wait_closed(3)
    turn = pending_turn(app, sid)
    assert turn is not None and turn.speech
    assert turn.speech in load_grammar(app.config["IVR_GRAMMARS_DIR"], "en", "yes_no").phrases
    assert interpret_yes_no(turn.speech, None, [builtin("en")]) is said.startswith("yes")


def test_a_broken_grammar_file_falls_back_to_free_speech(app, server, tmp_path):
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "yes_no.txt").write_text("# no phrases at all\n", encoding="utf-8")
    app.config["IVR_GRAMMARS_DIR"] = str(tmp_path)
    with call(server, "CAbadgrammar", step="confirm") as twilio:
        twilio.send_audio(utterance(POTHOLE))
        twilio.send_silence(2000)
        assert twilio.wait_closed(3)
    turn = pending_turn(app, "CAbadgrammar")
    assert turn is not None and turn.speech and "pothole" in turn.speech.lower()


def test_a_spoken_emergency_over_the_stream_is_an_emergency_turn(app, server):
    """Whether the 1-best or the emergency watch hears it, the parked turn leads to the advisory.
    (The stream may end the turn on an early, already-confident partial, before the watch has
    finished; the 1-best "… down and parking" carries the emergency by itself then.)"""
    from ivr.routing.classify import Classifier
    from ivr.routing.load import load_rules

    with call(server, "CAwatch") as twilio:
        twilio.send_audio(utterance("a power line is down and sparking"))
        twilio.send_silence(2000)
        assert twilio.wait_closed(3)
    turn = pending_turn(app, "CAwatch")
    assert turn is not None and turn.speech
    heard = Classifier(load_rules(app.config["IVR_RULES_PATH"])).classify(turn.speech, "en")
    assert heard.emergency or (turn.emergency_heard and "emergency watch" in turn.emergency_heard)


def test_a_call_with_every_decoder_busy_still_gets_its_turn(app, server, monkeypatch):
    """Pool exhausted: the stream waits briefly, then listens for keys and silence only."""
    from ivr.speech.service import speech_service

    with app.app_context():
        engine = speech_service().engine_for("en")
    monkeypatch.setattr(engine, "max_decoders", max(engine._made, 1))
    held = [engine._borrow(1.0) for _ in range(engine.max_decoders)]
    try:
        with call(server, "CAbusy") as twilio:
            twilio.send_silence(200)
            twilio.press("0")
            assert twilio.wait_closed(5)
    finally:
        for decoder in held:
            engine._give_back(decoder)
    turn = pending_turn(app, "CAbusy")
    assert turn is not None and (turn.speech, turn.digits) == (None, "0")


def test_a_stream_handler_that_raises_still_returns_its_decoders(app, server, monkeypatch):
    """A fault mid-turn (here the classifier, on the first partial) closes the stream and still
    gives the engine its decoders back. With a pool of one call's worth, three failing calls in
    a row would otherwise leave every later caller keypad-only."""
    from ivr.speech.service import speech_service
    from ivr.web.media import session

    with app.app_context():
        engine = speech_service().engine_for("en")
    monkeypatch.setattr(engine, "max_decoders", max(engine._made, 2))

    def broken(self, text):
        raise RuntimeError("classifier exploded")

    with monkeypatch.context() as patch:
        patch.setattr(session.StreamTurn, "_destination", broken)
        for n in range(3):
            with call(server, f"CAraise{n}") as twilio:
                twilio.send_audio(utterance(POTHOLE))
                assert twilio.wait_closed(5), "a failing handler must still close the stream"
    deadline = time.monotonic() + 10
    while engine.busy and time.monotonic() < deadline:   # the give-back runs in the decode pool
        time.sleep(0.05)
    assert engine.busy == 0, f"{engine.busy} decoders never came back"
    with call(server, "CAafterfaults") as twilio:
        twilio.send_audio(utterance(POTHOLE))
        twilio.send_silence(2000)
        assert twilio.wait_closed(5)
    turn = pending_turn(app, "CAafterfaults")
    assert turn is not None and turn.speech and "pothole" in turn.speech.lower()


def test_a_saturated_decode_pool_asks_the_caller_again_instead_of_silence(app, client, server, monkeypatch):
    """Every decoding thread stuck: the turn ends on the caller's pause, the recogniser cannot
    answer in time, and the next step is "Sorry, I did not catch that", not "I heard nothing"."""
    import threading as th

    from ivr.speech.pool import DecodePool
    from ivr.web.media import session

    pool = DecodePool(threads=1, queue_limit=4)
    release = th.Event()
    pool.submit(release.wait)                     # the one thread is busy until the test ends
    monkeypatch.setattr(session, "decode_pool", lambda: pool)
    app.config["IVR_DECODE_WAIT_MS"] = "500"
    form = {"CallSid": "CAsaturated", "From": "+15551234567", "To": "+15557654321"}
    try:
        assert signed_post(client, "/voice/incoming", form).status_code == 200
        with call(server, "CAsaturated", step="welcome") as twilio:
            twilio.send_audio(utterance(POTHOLE))
            twilio.send_silence(2500)
            assert twilio.wait_closed(5)
        turn = pending_turn(app, "CAsaturated")
        assert turn is not None and turn.speech is None and turn.unheard == "late"
        from ivr.store import calls, db, history

        with app.app_context():      # put it back for /voice/turn, as the stream left it
            calls.put_pending_turn(db.session(), "CAsaturated", turn)
            db.session().commit()
        answer = signed_post(client, "/voice/turn?step=welcome&n=1", {"CallSid": "CAsaturated"})
    finally:
        release.set()
        pool.shutdown()
    assert answer.status_code == 200
    body = answer.get_data().decode()
    # The prompt is on the stream (its key), a <Say>, or a <Play> not rendered yet (its words in the URL).
    played = " ".join(words_in_url(play.text or "") or "" for play in ET.fromstring(body).iter("Play"))
    assert "ask_again" in body or "did not catch that" in body + played, body
    with app.app_context():
        record = history.call_record(db.session(), "CAsaturated")
    assert "speech not recognised (late)" in json.dumps(record), "the reason should say why"
