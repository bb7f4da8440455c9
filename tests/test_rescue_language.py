"""The rescue answer (any failure → operator) speaks the caller's language in that language's voice."""
from __future__ import annotations

import pytest

from ivr import rules_source
from conftest import simulated_call
from test_call_failures import OPERATOR_LINE, app_config  # noqa: F401 - same rules copy and fallback


@pytest.fixture
def sim(client):
    return simulated_call(client)


def _break_the_classifier(monkeypatch) -> None:
    def broken():
        raise RuntimeError("classifier exploded")
    monkeypatch.setattr(rules_source, "current_classifier", broken)


def test_a_spanish_caller_is_rescued_in_spanish_with_the_spanish_voice(app, sim, monkeypatch):
    from ivr import prompts

    sim.call()
    sim.press("2")                                   # español
    _break_the_classifier(monkeypatch)
    response = sim.say("hay un bache en mi calle")
    assert response.status_code == 200
    say = sim.find("Say")
    assert say.get("language") == "es-MX"
    with app.app_context():
        assert say.text == prompts.text("operator", "es")
    assert sim.find("Dial/Sip").text == OPERATOR_LINE


def test_an_english_caller_is_rescued_with_the_english_voice(app, sim, monkeypatch):
    from ivr import prompts

    sim.call()
    sim.silence()
    _break_the_classifier(monkeypatch)
    sim.say("there is a pothole on my street")
    assert sim.find("Say").get("language") == "en-US"
    with app.app_context():
        assert sim.find("Say").text == prompts.text("operator", "en")


def test_the_say_voice_override_applies_to_the_rescue(app_config, monkeypatch):
    from ivr import create_app

    app = create_app({**app_config, "IVR_SAY_LANGUAGE_ES": "es-US"})   # voices read it at start
    sim = simulated_call(app.test_client())
    sim.call()
    sim.press("2")
    _break_the_classifier(monkeypatch)
    sim.say("hay un bache en mi calle")
    assert sim.find("Say").get("language") == "es-US"
