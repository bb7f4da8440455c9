"""speak()/audio_ulaw(): <Play> of cached audio, render on fetch (no webhook waits for a voice), the
served file, and every <Say> fallback."""
from __future__ import annotations

import os
import struct
import threading
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from twilio.twiml.voice_response import VoiceResponse

from ivr import prompts
from ivr.prompts import catalogue, serving, signed
from ivr.prompts.cache import PromptAudio
from ivr.voices import Speaker, pyttsx3_engine, ulaw_payload
from ivr.speech.audio import parse_wav
from stub_voice import Renderer

ROOT = Path(__file__).resolve().parent.parent
PUBLIC_URL = "https://ivr.example.test"
ADVISORY = "If this is an emergency, hang up and dial 911."


def make_app(tmp_path: Path, renderer: Renderer | None = None, *, testing: bool = True, **config) -> Flask:
    """A bare app with only the prompts wired in (independent of the other modules). With
    testing=False the secret key comes from the instance folder, as in each gunicorn worker."""
    app = Flask("prompt-test", instance_path=str(tmp_path / "instance"))
    app.config.update({"TESTING": testing, "IVR_PROMPTS_DIR": str(ROOT / "prompts"),
                       "IVR_PROMPT_CACHE_DIR": str(tmp_path / "cache"), "IVR_PUBLIC_URL": PUBLIC_URL,
                       "IVR_TTS_RATE": 150, "IVR_TTS_FETCH_WAIT_MS": 10000, **config})
    prompts.init_app(app)
    if renderer is not None:
        app.extensions[serving.AUDIO_EXTENSION] = PromptAudio(app.config["IVR_PROMPT_CACHE_DIR"], renderer.speakers())
    return app


def fetch(app: Flask, url: str, **headers):
    """Twilio's GET of a <Play> URL (path and query)."""
    parts = urlsplit(url)
    return app.test_client().get(parts.path, query_string=parts.query, headers=headers)


def served(app: Flask, verb: ET.Element) -> bytes:
    """The bytes Twilio fetches for a <Play>."""
    response = fetch(app, verb.text)
    assert response.status_code == 200
    return response.data


def renders_on_fetch(verb: ET.Element) -> bool:
    """A <Play> of audio that was not on disk when the webhook answered."""
    return verb.tag == "Play" and signed.QUERY in parse_qs(urlsplit(verb.text).query)


def idle(app: Flask) -> None:
    """Wait for the background renders (they never hold up a webhook)."""
    app.extensions[serving.AUDIO_EXTENSION].wait_idle()


def spoken(app: Flask, key: str, language: str, **values) -> ET.Element:
    """The single verb speak() appended, parsed."""
    with app.test_request_context():
        response = VoiceResponse()
        prompts.speak(response, key, language, **values)
    verbs = list(ET.fromstring(str(response)))
    assert len(verbs) == 1
    return verbs[0]


def test_speak_plays_a_served_wav(tmp_path):
    app = make_app(tmp_path, Renderer())
    verb = spoken(app, "welcome", "en", advisory=ADVISORY)
    assert verb.tag == "Play" and verb.text.startswith(f"{PUBLIC_URL}/prompts/audio/")
    response = fetch(app, verb.text)
    assert response.status_code == 200
    assert response.mimetype == "audio/wav"
    audio = parse_wav(response.data)
    assert audio.sample_rate == 8000 and 0.5 < audio.duration < 1.5   # the tone, lead and tail silence
    assert response.cache_control.max_age >= 86400 and response.cache_control.public
    again = fetch(app, verb.text, **{"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304


def test_rendered_words_are_the_filled_prompt_in_the_catalogue_voice(tmp_path):
    renderer = Renderer()
    app = make_app(tmp_path, renderer)
    spoken(app, "queue_position", "es", position=2, minutes=4)
    spoken(app, "choose_language", "en")
    idle(app)
    assert sorted(renderer.calls) == [("Para español, oprima 2 o diga español.", "roa/es-419"),
                                      ("Usted es el número 2 en la fila. La espera es de unos 4 minutos.", "roa/es-419")]


def test_cached_prompt_is_not_rendered_again(tmp_path):
    renderer = Renderer(block=True)
    app = make_app(tmp_path, renderer)
    first, second = spoken(app, "goodbye", "en"), spoken(app, "goodbye", "en")   # one render in flight
    assert renders_on_fetch(first) and first.text == second.text
    renderer.release.set()
    idle(app)
    third, fourth = spoken(app, "goodbye", "en"), spoken(app, "goodbye", "en")
    assert not renders_on_fetch(third) and third.text == fourth.text == first.text.split("?")[0]
    assert len(renderer.calls) == 1


def test_prebuilt_prompt_is_played_from_its_file_and_nothing_renders(tmp_path):
    renderer = Renderer()
    app = make_app(tmp_path, renderer)
    store = app.extensions[serving.AUDIO_EXTENSION]
    with app.app_context():
        store.render(prompts.text("goodbye", "en"), "en")     # what `ivr prompts build` does
    verb = spoken(app, "goodbye", "en")
    assert verb.tag == "Play" and not renders_on_fetch(verb)
    assert served(app, verb) == store.path(urlsplit(verb.text).path.rsplit("/", 1)[1][:-4]).read_bytes()
    assert len(renderer.calls) == 1


# --- render on fetch: no webhook waits for a voice --------------------------------------------


def test_a_webhook_answers_while_the_voice_is_stuck_and_the_fetch_gets_the_audio(tmp_path):
    renderer = Renderer(block=True)
    app = make_app(tmp_path, renderer)
    verb = spoken(app, "transferring", "en", department="Sanitation")    # returns with the voice blocked
    assert renders_on_fetch(verb) and not renderer.release.is_set()
    assert renderer.started.wait(10), "the render starts in the background at once"
    renderer.release.set()
    body = served(app, verb)
    # A real phone WAV: RIFF/WAVE, μ-law (format 7, which the standard library's `wave` cannot
    # read, hence the project's own reader), 8 kHz mono, the tone plus lead and tail silence.
    assert body[:4] == b"RIFF" and body[8:12] == b"WAVE" and struct.unpack("<HH", body[20:24]) == (7, 1)
    audio = parse_wav(body)
    assert audio.sample_rate == 8000 and 0.5 < audio.duration < 1.5
    assert renderer.calls == [("Connecting you to Sanitation. Please hold.", "gmw/en-us")]
    assert not renders_on_fetch(spoken(app, "transferring", "en", department="Sanitation"))   # on disk now


def test_a_fetch_joins_the_render_in_flight(tmp_path):
    renderer = Renderer(block=True)
    app = make_app(tmp_path, renderer)
    verb = spoken(app, "transferring", "en", department="Roads")
    assert renderer.started.wait(10)
    answers: list = []
    fetcher = threading.Thread(target=lambda: answers.append(fetch(app, verb.text)))
    fetcher.start()                 # Twilio fetches while the render is still running
    renderer.release.set()
    fetcher.join(20)
    (response,) = answers
    assert response.status_code == 200 and parse_wav(response.data).sample_rate == 8000
    assert len(renderer.calls) == 1


def test_a_late_render_gets_silence_that_is_not_cached_then_the_audio(tmp_path):
    renderer = Renderer(block=True)
    app = make_app(tmp_path, renderer, IVR_TTS_FETCH_WAIT_MS=0)
    verb = spoken(app, "transferring", "en", department="Parks")
    late = fetch(app, verb.text)     # the voice is still blocked: no waiting past the limit
    assert late.status_code == 200 and late.mimetype == "audio/wav" and late.cache_control.no_store
    assert parse_wav(late.data).duration < 0.5
    renderer.release.set()
    idle(app)
    assert parse_wav(served(app, verb)).duration > 0.5
    assert len(renderer.calls) == 1


@pytest.mark.parametrize("forgery", ["other key", "tampered", "other name", "no token", "garbage"])
def test_a_forged_render_on_fetch_url_is_refused_and_renders_nothing(tmp_path, forgery):
    renderer = Renderer()
    app = make_app(tmp_path, renderer)
    store = app.extensions[serving.AUDIO_EXTENSION]
    words = "Please send a taxi to my house."
    with app.app_context():
        name = store.name(words, "en")
        ours = signed.signer(app.config["SECRET_KEY"])
    token = {
        "other key": signed.token(signed.signer("not the line's key"), signed.Order(name, words, "en")),
        "tampered": signed.token(ours, signed.Order(name, "Goodbye.", "en")).replace(".", ".x", 1),
        "other name": signed.token(ours, signed.Order("0" * 32, words, "en")),
        "no token": "",
        "garbage": "not-a-token",
    }[forgery]
    response = fetch(app, f"{PUBLIC_URL}/prompts/audio/{name}.wav?say={token}")
    assert response.status_code == 404
    idle(app)
    assert renderer.calls == [] and not store.path(name).exists()


def test_both_workers_sign_with_the_same_key(tmp_path):
    """Two gunicorn workers each load the app: a URL one of them signs, the other renders."""
    first = make_app(tmp_path, Renderer(), testing=False)
    second_renderer = Renderer()
    second = make_app(tmp_path, second_renderer, testing=False, IVR_PROMPT_CACHE_DIR=str(tmp_path / "other"))
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"]
    verb = spoken(first, "transferring", "en", department="Libraries")
    assert renders_on_fetch(verb)
    assert parse_wav(served(second, verb)).sample_rate == 8000
    assert second_renderer.calls == [("Connecting you to Libraries. Please hold.", "gmw/en-us")]


def test_two_workers_do_not_render_the_same_words_twice(tmp_path):
    """Both workers share the cache folder; a file lock per name makes the second wait for the first."""
    renderer = Renderer(block=True)
    speakers = {"en": Speaker("en", renderer.engine("gmw/en-us", "en"), "en-US")}
    one, two = (PromptAudio(tmp_path / "cache", speakers) for _ in range(2))
    results: list[str] = []
    threads = [threading.Thread(target=lambda store=store: results.append(store.render("Hello there.", "en")))
               for store in (one, two)]
    threads[0].start()
    assert renderer.started.wait(10)     # the first holds the lock while it renders
    threads[1].start()
    renderer.release.set()
    for thread in threads:
        thread.join(20)
    assert len(results) == 2 and results[0] == results[1] and len(renderer.calls) == 1


def test_has_audio_starts_the_render_and_says_no_until_it_is_on_disk(tmp_path):
    renderer = Renderer(block=True)
    app = make_app(tmp_path, renderer)
    with app.app_context():
        assert prompts.has_audio("goodbye", "en") is False     # at once, with the voice blocked
        assert prompts.audio_ulaw("goodbye", "en") is None
    assert renderer.started.wait(10)
    renderer.release.set()
    idle(app)
    with app.app_context():
        assert prompts.has_audio("goodbye", "en") is True
    assert len(renderer.calls) == 1
@pytest.mark.parametrize("path", ["/prompts/audio/..%2F..%2Fetc%2Fpasswd.wav", "/prompts/audio/../../app.wav",
                                  "/prompts/audio/" + "A" * 32 + ".wav", "/prompts/audio/" + "a" * 32 + ".wav",
                                  "/prompts/audio/" + "a" * 31 + ".wav"])
def test_only_existing_hash_names_are_served(tmp_path, path):
    app = make_app(tmp_path, Renderer())
    assert app.test_client().get(path).status_code == 404


def test_render_failure_gives_silence_at_the_fetch_then_say_in_the_right_language(tmp_path):
    app = make_app(tmp_path, Renderer(fail=True))
    verb = spoken(app, "busy", "es", department="Sanidad")
    assert renders_on_fetch(verb)           # the webhook did not wait to find out
    fetched = fetch(app, verb.text)         # a valid WAV, so Twilio goes on to the next verb
    assert fetched.status_code == 200 and fetched.cache_control.no_store
    assert parse_wav(fetched.data).sample_rate == 8000
    verb = spoken(app, "busy", "es", department="Sanidad")     # e.g. the caller asks to hear it again
    assert verb.tag == "Say" and verb.get("language") == "es-MX"
    assert verb.text == "La línea de Sanidad está ocupada en este momento."


def test_failed_render_is_not_retried_on_every_call(tmp_path):
    renderer = Renderer(fail=True)
    app = make_app(tmp_path, renderer)
    assert renders_on_fetch(spoken(app, "goodbye", "en"))
    idle(app)
    assert spoken(app, "goodbye", "en").tag == "Say"
    assert spoken(app, "goodbye", "en").tag == "Say"
    # A voice that just failed gets <Say> for new words too: a render-on-fetch URL would only
    # give callers silence while the engine is broken.
    assert spoken(app, "transferring", "en", department="Roads").tag == "Say"
    assert len(renderer.calls) == 1


def test_rendering_off_says_everything(tmp_path):
    app = make_app(tmp_path, IVR_TTS="off")
    verb = spoken(app, "choose_language", "en")
    assert verb.tag == "Say" and verb.get("language") == "es-MX"


def test_no_engine_on_the_machine_says_everything(tmp_path, monkeypatch):
    monkeypatch.setattr(pyttsx3_engine, "engine_problem", lambda: "espeak-ng is not installed")
    app = make_app(tmp_path, IVR_TTS_ENGINE_ES="pyttsx3")
    verb = spoken(app, "goodbye", "es")
    assert (verb.tag, verb.get("language"), verb.text) == ("Say", "es-MX", "Gracias por llamar. Adiós.")
    assert verb.get("voice") == "Polly.Mia-Neural"


def test_spanish_call_hears_only_spanish(tmp_path):
    app = make_app(tmp_path, IVR_TTS="off")
    values = {"advisory": "Si es una emergencia, cuelgue y marque 911.", "description": "un bache",
              "label": "Calles", "digit": "1", "department": "Calles y Carreteras", "position": 2,
              "minutes": 3, "hours": "de lunes a viernes", "service": "Bache", "case": "4 8 2, 7 1 5 3",
              "message": "Sabemos de la ruptura de la tubería.", "topic": "agua"}
    with app.app_context():
        keys = sorted(serving.catalogue_now()["es"])
    for key in keys:
        verb = spoken(app, key, "es", **values)
        assert (verb.tag, verb.get("language")) == ("Say", "es-MX"), key


def test_spanish_audio_uses_the_spanish_voice(tmp_path):
    renderer = Renderer()
    app = make_app(tmp_path, renderer)
    with app.app_context():
        for key, prompt in serving.catalogue_now()["es"].items():
            if not prompt.placeholders:
                spoken(app, key, "es")
    idle(app)
    assert renderer.calls and {voice for _, voice in renderer.calls} == {"roa/es-419"}


def test_missing_key_or_value_is_a_clear_error_not_a_fallback(tmp_path):
    app = make_app(tmp_path, Renderer())
    with app.test_request_context(), pytest.raises(prompts.PromptError, match="no prompt 'nope' in en"):
        prompts.speak(VoiceResponse(), "nope", "en")
    with app.test_request_context(), pytest.raises(prompts.PromptError, match="needs department"):
        prompts.speak(VoiceResponse(), "transferring", "en")
    with app.app_context(), pytest.raises(prompts.PromptError, match="no prompts for language 'fr'"):
        prompts.text("goodbye", "fr")


def test_audio_ulaw_is_raw_8khz_mulaw(tmp_path):
    app = make_app(tmp_path, Renderer())
    played = served(app, spoken(app, "goodbye", "en"))
    with app.app_context():
        audio = prompts.audio_ulaw("goodbye", "en")
    assert audio == ulaw_payload(played)
    assert len(audio) == len(parse_wav(played).pcm16) // 2   # one byte per 8 kHz sample


def test_audio_ulaw_is_none_when_rendering_fails(tmp_path):
    app = make_app(tmp_path, Renderer(fail=True))
    with app.app_context():
        assert prompts.audio_ulaw("goodbye", "en") is None


def test_play_inside_gather(tmp_path):
    app = make_app(tmp_path, Renderer())
    with app.test_request_context():
        response = VoiceResponse()
        gather = response.gather(input="dtmf speech", action="/voice/turn")
        prompts.speak(gather, "ask", "en")
    (gather_element,) = ET.fromstring(str(response))
    assert [child.tag for child in gather_element] == ["Play"]


@pytest.mark.skipif(pyttsx3_engine.engine_problem() is not None and not os.environ.get("CI"),
                    reason=f"no TTS engine here (CI installs espeak-ng and runs these): {pyttsx3_engine.engine_problem()}")
def test_real_rendering_end_to_end(tmp_path):
    app = make_app(tmp_path, IVR_TTS_ENGINE="pyttsx3")
    verb = spoken(app, "operator", "en")
    assert verb.tag == "Play"
    body = served(app, verb)     # rendered by the fetch at the latest
    assert 1.0 < parse_wav(body).duration < 6.0  # "Connecting you to a person. Please hold."


def test_edited_prompts_are_reloaded_and_a_broken_edit_is_ignored(tmp_path, monkeypatch, caplog):
    import os
    import shutil

    shutil.copytree(ROOT / "prompts", tmp_path / "prompts")
    app = make_app(tmp_path, IVR_TTS="off", IVR_PROMPTS_DIR=str(tmp_path / "prompts"))
    monkeypatch.setattr(catalogue, "RELOAD_CHECK_S", 0.0)
    english = tmp_path / "prompts" / "en.yaml"
    original = english.read_text(encoding="utf-8")

    def edit(text: str, mtime: int) -> None:
        english.write_text(text, encoding="utf-8")
        os.utime(english, (mtime, mtime))  # file timestamps can be coarser than two quick writes

    edit(original.replace("Thank you for calling. Goodbye.", "Goodbye for now."), 2_000_000_000)
    with app.app_context():
        assert prompts.text("goodbye", "en") == "Goodbye for now."
    edit(original.replace('goodbye: "', 'goodbye: "{nonsense} '), 2_000_000_100)
    with app.app_context():
        assert prompts.text("goodbye", "en") == "Goodbye for now."
    assert "keeping the last good prompts" in caplog.text and "{nonsense}" in caplog.text
