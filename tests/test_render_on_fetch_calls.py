"""Whole calls with a voice that renders prompts (a stub, blocked): no webhook waits for it.

Prompts that `ivr prompts build` could not know (the case number read back) and, here, every other
prompt too (the cache starts empty) are played from render-on-fetch URLs while the voice is stuck;
the simulator still shows the caller's words, and Twilio's fetch of a URL gets the real audio once
the voice is free.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone
from urllib.parse import urlsplit

import pytest

from conftest import simulated_call
from ivr.prompts import serving, words_in_url
from ivr.prompts.cache import PromptAudio
from ivr.speech.audio import parse_wav
from ivr.store import db, service_requests
from stub_voice import Renderer

# Tuesday 10 March 2026, 22:00 in Chicago: the roads department is closed, so "report it now".
NIGHT = datetime(2026, 3, 11, 3, 0, tzinfo=timezone.utc)


@pytest.fixture
def app_config(app_config):
    # IVR_TTS=off keeps real voices from loading; the test installs its own renderer below.
    return {**app_config, "IVR_TTS": "off", "IVR_WARM": False, "IVR_CLOCK": lambda: NIGHT}


@pytest.fixture
def renderer(app) -> Renderer:
    stuck = Renderer(block=True)
    app.extensions[serving.AUDIO_EXTENSION] = PromptAudio(app.config["IVR_PROMPT_CACHE_DIR"], stuck.speakers())
    yield stuck
    stuck.release.set()
    app.extensions[serving.AUDIO_EXTENSION].wait_idle()


def plays(sim) -> list[str]:
    return [element.text.strip() for element in sim.doc.iter("Play")]


def report_call(client):
    """A caller after hours reports a pothole and gives its place: the case number is read back."""
    sim = simulated_call(client, from_="+13125550123")
    sim.call()
    sim.silence()
    sim.say("there is a big pothole in front of my house")
    sim.say("I'd like to report it")
    sim.say("in front of 1200 North Elm Street")
    return sim


def test_the_case_number_is_heard_while_the_voice_is_stuck_and_its_audio_is_fetched(app, client, renderer):
    sim = report_call(client)
    heard = " ".join(sim.heard())
    match = re.search(r"Your case number is: ([0-9 ,]+)\. Again: \1\.", heard)
    assert match, heard
    case = re.sub(r"\D", "", match.group(1))
    # Every webhook of the call answered with the voice blocked, each prompt a <Play> (no <Say>).
    assert not renderer.release.is_set() and sim.texts() == []
    assert all("say=" in url for url in plays(sim))
    with app.app_context():
        filed = [r for r in service_requests.search(db.session(), limit=10) if r.call_sid == sim.sid]
    assert [r.case_number for r in filed] == [case]

    readback = next(url for url in plays(sim) if "case number" in (words_in_url(url) or ""))
    renderer.release.set()                 # the voice is free: Twilio's fetch gets the audio
    parts = urlsplit(readback)
    fetched = client.get(parts.path, query_string=parts.query)
    assert fetched.status_code == 200 and fetched.mimetype == "audio/wav"
    assert parse_wav(fetched.data).sample_rate == 8000
    assert any(text.startswith(f"Your case number is: {match.group(1)}.") for text, _voice in renderer.calls)

    sim.say("repeat")                      # star / "repeat": now played from its file
    store = app.extensions[serving.AUDIO_EXTENSION]
    rendered = {store.name(text, "es" if voice == "roa/es-419" else "en"): text for text, voice in renderer.calls}
    sim.audio_words = lambda url: rendered.get(urlsplit(url).path.rsplit("/", 1)[-1].removesuffix(".wav"))
    assert re.search(rf"Your case number is: {re.escape(match.group(1))}\.", " ".join(sim.heard()))
    assert readback.split("?")[0] in plays(sim)


def test_after_prompts_build_only_the_case_number_is_rendered_during_a_report_call(app, client):
    """Everything else a report call says is knowable ahead (`ivr prompts build`): the service read
    back, the offers' keys, the department's hours, the topics."""
    from ivr.prompts.fixed import fixed_texts
    from ivr.routing.hours import hours_by_code
    from ivr.rules_source import current_rules

    voice = Renderer()
    store = app.extensions[serving.AUDIO_EXTENSION] = PromptAudio(app.config["IVR_PROMPT_CACHE_DIR"], voice.speakers())
    with app.app_context():
        rules, catalogue = current_rules(), serving.catalogue_now()
        for language in catalogue:
            for item in fixed_texts(catalogue[language], language, rules, hours_by_code(rules)):
                store.render(item.text, item.voice)
    built = len(voice.calls)
    sim = report_call(client)
    sim.say("repeat")
    store.wait_idle()
    per_call = [text for text, _voice in voice.calls[built:]]
    assert len(per_call) == 1 and per_call[0].startswith("Your case number is:"), per_call
