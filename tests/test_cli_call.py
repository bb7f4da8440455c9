"""`ivr call` phones a running line with signed requests and follows its TwiML, as Twilio would."""
from __future__ import annotations

import threading
from datetime import datetime, timezone

import pytest
from werkzeug.serving import make_server

from ivr.cli import cli

TUESDAY_MORNING = datetime(2026, 12, 1, 16, 0, tzinfo=timezone.utc)   # 10:00 in the city: open


@pytest.fixture
def serve(app_config):
    """Start the line on a free localhost port with `overrides`; yields its base URL."""
    servers = []

    def start(**overrides) -> str:
        from ivr import create_app

        app = create_app({**app_config, "IVR_TTS": "off", "IVR_CLOCK": lambda: TUESDAY_MORNING,
                          "IVR_PUBLIC_URL": "", **overrides})
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server in servers:
        server.shutdown()


def run_call(url: str, token: str, *answers: str):
    from click.testing import CliRunner

    args = ["call", "--url", url, "--token", token]
    for answer in answers:
        args += ["--say", answer]
    return CliRunner().invoke(cli, args)


def test_a_spoken_request_reaches_the_department_and_the_agent_hears_the_whisper(serve, app_config):
    url = serve(IVR_CAPTURE="twilio", IVR_SPEECH_ENGINE="twilio")
    result = run_call(url, app_config["TWILIO_AUTH_TOKEN"], "1", "there is a big pothole on main street")
    assert result.exit_code == 0, result.output
    assert "agent hears:" in result.output and "pothole on main street" in result.output
    assert "call ended: connected to +1" in result.output


def test_keys_over_a_media_stream_reach_the_operator(serve, app_config):
    url = serve(IVR_CAPTURE="stream", IVR_SPEECH_ENGINE="auto")
    result = run_call(url, app_config["TWILIO_AUTH_TOKEN"], "1", "0")
    assert result.exit_code == 0, result.output
    assert "call ended: waiting in queue 'operator'" in result.output   # the shipped operator desk queues


def test_a_wrong_token_is_refused_with_a_clear_error(serve):
    url = serve(IVR_CAPTURE="twilio", IVR_SPEECH_ENGINE="twilio")
    result = run_call(url, "not-the-token", "1")
    assert result.exit_code == 1
    assert "answered 403" in result.output


def test_nobody_listening_is_a_clear_error():
    result = run_call("http://127.0.0.1:9", "token", "1")
    assert result.exit_code == 1
    assert "is `make run` serving?" in result.output


def test_the_caller_sees_the_words_it_hears_not_prompt_keys(serve, app_config):
    url = serve(IVR_CAPTURE="stream", IVR_SPEECH_ENGINE="auto")
    result = run_call(url, app_config["TWILIO_AUTH_TOKEN"], "1", "0")
    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.output.splitlines() if line.strip().startswith("line:")]
    assert lines, result.output
    # The greeting's words from prompts/en.yaml, as the caller hears them over the Media Stream.
    assert any("press 2" in line.lower() or "oprima 2" in line.lower() for line in lines), result.output
    assert not any("prompt" in line and "♪" in line for line in lines), result.output
