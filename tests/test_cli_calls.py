"""`ivr calls`: an admin reads what the line did and why, straight from the call database."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from click.testing import CliRunner

from ivr.cli import cli
from conftest import simulated_call
from ivr.telephony.simulator import SimulatedCall

OPEN = datetime(2026, 3, 10, 15, 0, tzinfo=timezone.utc)   # a Tuesday, 10:00 in the city


@pytest.fixture
def app_config(app_config):
    return {**app_config, "IVR_TTS": "off", "IVR_CLOCK": lambda: OPEN}


@pytest.fixture
def pothole_call(client) -> SimulatedCall:
    sim = simulated_call(client, from_="+13125550123")
    sim.call()
    sim.press("1")
    sim.say("there's a pothole on Main Street")
    return sim


def run(app_config, *args):
    return CliRunner().invoke(cli, ["calls", "--url", app_config["IVR_DATABASE_URL"], *args])


def test_the_list_shows_recent_calls_with_masked_numbers(app_config, pothole_call):
    result = run(app_config)
    assert result.exit_code == 0, result.output
    assert pothole_call.sid in result.output and "transferred" in result.output and "roads" in result.output
    assert "+13125550123" not in result.output and "0123" in result.output


def test_one_call_tells_questions_answers_and_reasons(app_config, pothole_call):
    result = run(app_config, pothole_call.sid)
    assert result.exit_code == 0, result.output
    assert "line asked: Briefly, what are you calling about?" in result.output
    assert "caller said \"there's a pothole on Main Street\"" in result.output
    assert "understood: matched 'pothole'" in result.output
    assert "→ transfer: confidence" in result.output


def test_json_is_the_api_document_with_numbers_masked(app_config, pothole_call):
    output = run(app_config, pothole_call.sid, "--json").output
    document = json.loads(output)
    assert document["sid"] == pothole_call.sid and document["from"] == "+1******0123"
    assert [t["step"] for t in document["turns"]] == ["welcome", "ask"]
    assert "3125550123" not in output


def test_every_format_masks_numbers_unless_asked(app_config, pothole_call):
    for args in ((), ("--json",), (pothole_call.sid,), (pothole_call.sid, "--json")):
        result = run(app_config, *args)
        assert result.exit_code == 0, result.output
        assert "3125550123" not in result.output, args
        shown = run(app_config, *args, "--show-numbers")
        assert "+13125550123" in shown.output, args


def test_unknown_call_and_bad_limit_are_clear_errors(app_config, pothole_call):
    unknown = run(app_config, "CAnope")
    assert unknown.exit_code == 1 and "no call 'CAnope'" in unknown.output
    bad = run(app_config, "--limit", "0")
    assert bad.exit_code == 2 and "limit" in bad.output
