"""Whole calls over Media Streams with the production default engine (`auto`; Whisper when installed),
on SQLite and PostgreSQL.

The webhooks are signed and followed as Twilio follows them (`ivr.telephony.simulator`); every
listening step is a real websocket on a real threaded server, carrying
piper speech in real-time 20 ms μ-law frames, into the real recogniser. Nothing is mocked: the turn
ends on the server's endpointer and is decoded in the shared decode pool. No wall-clock asserts.
"""
from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from typing import Iterator

import numpy as np
import pytest

from ivr.telephony.simulator import FlaskTransport, MediaStream, SimulatedCall
from conftest import PUBLIC_URL, TEST_AUTH_TOKEN, live_media_server
from speechgen import last_voice_ms, spoken_pcm16

pytestmark = pytest.mark.speech



@pytest.fixture
def app_config(app_config, db_url):
    app_config.update({
        "IVR_DATABASE_URL": db_url,
        # A silent turn ends after 1.5 s instead of 5 s: the no-input path, sooner.
        "IVR_ENDPOINT_NO_INPUT_MS": "1500",
        "IVR_CAPTURE": "stream",
        "IVR_SPEECH_ENGINE": "auto",          # what production runs
        "IVR_SPEECH_ENGINE_ES": "twilio",     # only English is spoken here
        # Not about speed: a loaded CI machine must not turn a slow decode into "say that again".
        "IVR_DECODE_WAIT_MS": "30000",
    })
    return app_config


@pytest.fixture
def server(app) -> Iterator[tuple[str, str]]:
    """(ws:// base URL of the app on a real threaded server, the engine `auto` chose for English)."""
    with live_media_server(app) as served:
        yield served


def first_voice_ms(pcm16: bytes, threshold: float = 400.0) -> int:
    """Start of the first 20 ms frame louder than `threshold` RMS."""
    samples = np.frombuffer(pcm16, dtype="<i2").astype(np.float64)
    frames = samples[: samples.size // 160 * 160].reshape(-1, 160)
    loud = np.flatnonzero(np.sqrt((frames ** 2).mean(axis=1)) >= threshold)
    return int(loud[0] * 20) if loud.size else 0


def phone(client) -> SimulatedCall:
    return SimulatedCall(FlaskTransport(client), token=TEST_AUTH_TOKEN, public_url=PUBLIC_URL)


def answer_on_stream(call: SimulatedCall, ws_base: str, pcm: bytes) -> MediaStream:
    """Do what Twilio does with the current `<Connect><Stream>`: open the stream (the prompt, if
    the stream plays it, is talked over), carry the caller's audio and then line silence until
    the line closes it, and post the action."""
    assert call.has("Connect"), f"the line should listen on a Media Stream: {call.verbs()}"
    call.connect_stream(audio=pcm, ws_base=ws_base, timeout_s=60)
    assert call.stream is not None and call.stream.closed, "the server never ended the turn"
    return call.stream


def stream_turns(app, sid: str) -> list[dict]:
    from ivr.store import db, history

    with app.app_context():
        record = history.call_record(db.session(), sid)
    return [e["detail"] for e in record["events"] if e["kind"] == "stream_turn"]


def outcome(app, sid: str) -> tuple[str | None, str | None]:
    from ivr.store import db, history

    with app.app_context():
        record = history.call_record(db.session(), sid)
    return record["outcome"], (record["outcome_detail"] or {}).get("department")


def test_a_spoken_request_is_routed_over_two_stream_turns_at_most(app, client, server):
    """Welcome → the caller says what they need → (a yes/no confirmation, said) → routed to roads."""
    ws_url, engine = server
    sim = phone(client)
    sim.call()
    answer_on_stream(sim, ws_url, spoken_pcm16("there is a huge pothole on Main Street"))
    if sim.has("Connect") and "confirm" in ET.tostring(sim.find("Connect"), encoding="unicode"):
        answer_on_stream(sim, ws_url, spoken_pcm16("yes"))
    assert outcome(app, sim.sid) in (("transferred", "roads"), ("queued", "roads"), ("after_hours", "roads"))
    turns = stream_turns(app, sim.sid)
    assert turns and all(t["speech"] for t in turns)
    assert all(t["reason"] in ("early", "silence") for t in turns), turns
    if engine == "whisper":
        # One decode per utterance: the pause's decode is the final one unless the caller went on.
        assert all(1 <= t["decodes"] <= 3 for t in turns), turns


def test_a_caller_who_pauses_mid_sentence_is_heard_whole(app, client, server):
    """The decode started at the first pause is thrown away when the caller goes on: the turn
    holds both halves, and the call is not cut off after "I'm calling about"."""
    ws_url, engine = server
    first, second = spoken_pcm16("I'm calling about"), spoken_pcm16("the broken street light outside my house")
    first = first[: last_voice_ms(first) * 16]                   # 16 bytes per ms
    second = second[first_voice_ms(second) * 16:]
    gap = np.zeros(8 * 350, dtype="<i2").tobytes()     # 350 ms: a pause, not the end of the turn
    pcm = first + gap + second
    sim = phone(client)
    sim.call()
    answer_on_stream(sim, ws_url, pcm)
    turns = stream_turns(app, sim.sid)
    assert len(turns) == 1 and turns[0]["speech"]
    from ivr.store import db, history

    with app.app_context():
        heard = history.call_record(db.session(), sim.sid)["turns"][0]["heard"].lower()
    assert "light" in heard and "calling" in heard, heard
    if engine == "whisper":
        assert turns[0]["decodes"] >= 2, "the first pause should have started a decode"


def test_an_emergency_ends_the_turn_and_reaches_the_advisory(app, client, server):
    ws_url, _engine = server
    sim = phone(client)
    sim.call()
    answer_on_stream(sim, ws_url, spoken_pcm16("my kitchen is on fire"))
    assert outcome(app, sim.sid)[0] == "emergency"
    assert stream_turns(app, sim.sid)[0]["reason"] in ("emergency", "early", "silence")


def test_a_saturated_decode_pool_asks_again_instead_of_silence(app, client, server, monkeypatch):
    """No decoding thread free and no room to queue: the caller hears "please say that again"."""
    from ivr.speech.pool import DecodePool
    from ivr.web.media import session

    ws_url, _engine = server
    pool = DecodePool(threads=1, queue_limit=0)
    release = threading.Event()
    pool.submit(release.wait)
    monkeypatch.setattr(session, "decode_pool", lambda: pool)
    app.config["IVR_DECODE_WAIT_MS"] = "500"
    try:
        sim = phone(client)
        sim.call()
        answer_on_stream(sim, ws_url, spoken_pcm16("there is a huge pothole on Main Street"))
    finally:
        release.set()
        pool.shutdown()
    turn = stream_turns(app, sim.sid)[0]
    assert turn["unheard"] in ("busy", "late") and not turn["speech"]
    assert sim.has("Connect"), "the caller must be asked again on the stream"
    params = {p.get("name"): p.get("value") for p in sim.find("Connect").find("Stream").findall("Parameter")}
    said = " ".join(sim.heard()) + " " + (params.get("prompts") or "")   # <Say>, <Play> words or file names, stream prompts
    with app.app_context():   # a prompt not on disk yet is played before the stream (its words in the URL) or from its file
        from ivr import prompts
        from ivr.prompts import serving
        again_file = serving.prompt_audio().name(prompts.text("ask_again", "en"), "en")
    assert "ask_again" in said or "did not catch that" in said or again_file in said, said


def test_a_call_over_several_stream_turns_silence_then_the_request_then_yes(app, client, server):
    """Multi-turn, as production runs it: the caller says nothing at first (the line asks again on
    the stream), then says what they need, then answers a confirmation if the line asks one.
    Every turn is heard on a Media Stream by the default engine and stored in the database."""
    ws_url, engine = server
    sim = phone(client)
    sim.call()
    answer_on_stream(sim, ws_url, b"")                       # turn 1: silence
    answer_on_stream(sim, ws_url, spoken_pcm16("the traffic light on Elm Street is stuck on red"))
    said = 2
    while sim.has("Connect") and said < 4:                  # a confirmation (or a second try)
        answer_on_stream(sim, ws_url, spoken_pcm16("yes"))
        said += 1
    assert outcome(app, sim.sid) in (("transferred", "traffic"), ("queued", "traffic"), ("after_hours", "traffic"))
    turns = stream_turns(app, sim.sid)
    assert len(turns) == said >= 2, turns
    assert turns[0]["reason"] == "no_input" and not turns[0]["speech"], turns[0]
    assert all(t["speech"] for t in turns[1:]), turns
    if engine == "whisper":
        assert turns[0]["decodes"] == 0, "nobody spoke: nothing to decode"
    from ivr.store import db, history

    with app.app_context():
        heard = [t["heard"] for t in history.call_record(db.session(), sim.sid)["turns"]]
    assert len(heard) == said and "light" in (heard[1] or "").lower(), heard


def test_a_stream_handler_that_raises_gives_its_pool_slot_back(app, client, server, monkeypatch):
    """A fault in the handler while the caller's decode waits in the pool: the stream is closed
    (the call goes on), the queued decode is withdrawn instead of running for nobody, and the
    pool, one thread and room for one job, still hears the next caller. Three failures in a row
    would otherwise fill it: every later caller asked to repeat, or keypad-only."""
    from ivr.speech.pool import DecodePool
    from ivr.web.media import listen, session

    ws_url, engine = server
    pool = DecodePool(threads=1, queue_limit=1)
    monkeypatch.setattr(session, "decode_pool", lambda: pool)
    ran: list[int] = []
    if engine == "whisper":
        real_run = listen.UtteranceListener._run
        monkeypatch.setattr(listen.UtteranceListener, "_run",
                            lambda self, audio: (ran.append(len(audio)), real_run(self, audio))[1])
    real_hear = session.StreamTurn._hear
    raised: list[str] = []

    def hear_then_fail(self, pcm16):
        signal = real_hear(self, pcm16)
        if getattr(self.listener, "decodes", 0) or getattr(self.listener, "_draining", False):
            raised.append(self.start.call_sid)
            raise RuntimeError("handler exploded with a decode in the pool")
        return signal

    gate = threading.Event()
    try:
        pool.submit(gate.wait)                   # the thread is busy: the failing calls' work waits
        with monkeypatch.context() as patch:
            patch.setattr(session.StreamTurn, "_hear", hear_then_fail)
            for _ in range(3):
                sim = phone(client)
                sim.call()
                stream = answer_on_stream(sim, ws_url, spoken_pcm16("there is a huge pothole on Main Street"))
                assert stream.closed, "a failing handler must still close the stream"
                assert sim.has("Connect") or sim.has("Gather"), "the call must go on after the fault"
        # Each failing call got its decode into the pool: the dead ones before it had left room.
        assert len(raised) == 3, raised
    finally:
        gate.set()
    deadline = threading.Event()
    for _ in range(200):                          # the pool drains (no wall-clock assertion)
        stats = pool.stats()
        if stats.running == 0 and stats.waiting == 0:
            break
        deadline.wait(0.05)
    assert (pool.stats().running, pool.stats().waiting) == (0, 0)
    if engine == "whisper":
        assert ran == [], "a dead call's queued decode ran anyway"
    sim = phone(client)
    sim.call()
    answer_on_stream(sim, ws_url, spoken_pcm16("there is a huge pothole on Main Street"))
    turns = stream_turns(app, sim.sid)
    assert turns and turns[0]["speech"] and not turns[0].get("unheard"), turns
    pool.shutdown()
