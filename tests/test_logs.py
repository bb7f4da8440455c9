"""Structured logs: every line of a request carries its CallSid and request id (JSON with
IVR_LOG_FORMAT=json), media-stream and decode-pool lines too, and no full phone number."""
from __future__ import annotations

import io
import json
import logging
import sys
import threading

import pytest

from ivr import logs
from conftest import simulated_call


class Stderr(io.StringIO):
    """What the app's log handler writes to (it takes sys.stderr when it is made, so apps are made
    in fixtures: pytest puts its own sys.stderr back when a test's call phase starts)."""

    def readouterr(self) -> "Stderr":       # the shape of capsys.readouterr(), reading what is new
        self.err = self.getvalue()
        self.seek(0)
        self.truncate()
        return self


@pytest.fixture
def capsys(monkeypatch):
    stream = Stderr()
    monkeypatch.setattr(sys, "stderr", stream)
    yield stream
    monkeypatch.undo()
    logs.configure({})              # back to the real stderr, as text, for the other tests


@pytest.fixture
def json_app(app_config, capsys):
    from ivr import create_app

    app = create_app({**app_config, "IVR_TTS": "off", "IVR_LOG_FORMAT": "json"})
    capsys.readouterr()             # start-up lines are not a request's
    return app


def lines(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]


def test_every_line_of_a_webhook_carries_its_callsid_and_request_id(json_app, capsys):
    sim = simulated_call(json_app.test_client(), from_="+13125550123")
    sim.call()
    request_id = sim.last.headers["X-Request-Id"]
    entries = lines(capsys)
    assert entries, "the incoming call logs at least one line"
    assert {(e["call_sid"], e["request_id"]) for e in entries} == {(sim.sid, request_id)}
    assert all({"time", "level", "logger", "message"} <= set(e) for e in entries)
    assert any("+1******0123" in e["message"] for e in entries)
    assert "3125550123" not in json.dumps(entries)


def test_a_given_request_id_is_kept_and_a_strange_one_replaced(json_app):
    client = json_app.test_client()
    assert client.get("/healthz", headers={"X-Request-Id": "lb-42"}).headers["X-Request-Id"] == "lb-42"
    odd = client.get("/healthz", headers={"X-Request-Id": "<script>"}).headers["X-Request-Id"]
    assert odd != "<script>" and len(odd) == 16


def test_lines_outside_requests_and_after_them_carry_no_stale_ids(json_app, capsys):
    simulated_call(json_app.test_client()).call()
    capsys.readouterr()
    logging.getLogger("ivr.test").warning("between requests")
    (entry,) = lines(capsys)
    assert (entry["call_sid"], entry["request_id"]) == ("-", "-")


def test_media_stream_and_decode_pool_lines_carry_the_callsid(json_app, capsys):
    """The stream binds the CallSid from Twilio's start message; pool jobs run in its context."""
    from ivr.speech.pool import DecodePool

    pool = DecodePool(1)
    seen = {}

    def stream_handler():
        logs.bind_call("CA" + "7" * 32)
        logging.getLogger("ivr.web.media").info("stream listening")
        pool.submit(lambda: logging.getLogger("ivr.speech").info("decoded")).result(timeout=5)
        seen["done"] = True

    thread = threading.Thread(target=stream_handler)
    thread.start()
    thread.join(timeout=10)
    pool.shutdown()
    assert seen
    entries = {e["message"]: e["call_sid"] for e in lines(capsys)}
    assert entries == {"stream listening": "CA" + "7" * 32, "decoded": "CA" + "7" * 32}


def test_a_stray_full_number_is_masked_in_any_line(json_app, capsys):
    logging.getLogger("ivr.test").warning("callback to %s failed", "+1 (312) 555-0123")
    logging.getLogger("ivr.test").warning("call CA%s lasted 12 s", "0" * 32)
    first, second = lines(capsys)
    assert "555-0123" not in first["message"] and "0123" in first["message"]
    assert second["message"] == f"call CA{'0' * 32} lasted 12 s"


@pytest.fixture
def text_app(app_config, capsys):
    from ivr import create_app

    app = create_app({**app_config, "IVR_TTS": "off"})     # in setup, while sys.stderr is ours
    capsys.readouterr()
    return app


def test_text_format_shows_the_ids_too(text_app, capsys):
    sim = simulated_call(text_app.test_client())
    sim.call()
    err = capsys.readouterr().err
    assert f"[call {sim.sid} req {sim.last.headers['X-Request-Id']}]" in err


def test_an_unknown_format_refuses_to_start(app_config):
    from ivr import create_app

    with pytest.raises(ValueError, match="IVR_LOG_FORMAT"):
        create_app({**app_config, "IVR_LOG_FORMAT": "xml"})
