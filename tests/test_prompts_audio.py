"""speak()/audio_ulaw(): <Play> of cached audio, the served file, and every <Say> fallback."""
from __future__ import annotations

import os
import threading
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from flask import Flask
from twilio.twiml.voice_response import VoiceResponse

from ivr import prompts
from ivr.prompts import catalogue, serving
from ivr.prompts.cache import PromptAudio
from ivr.voices import Speaker, TTSError, pyttsx3_engine, ulaw_payload
from ivr.speech.audio import Audio, parse_wav, wav_bytes

ROOT = Path(__file__).resolve().parent.parent
PUBLIC_URL = "https://ivr.example.test"
ADVISORY = "If this is an emergency, hang up and dial 911."


class Renderer:
    """Stub engine for both languages: records (text, voice) per call; can fail, or block until released."""
    splits = False
    phonemes = False

    def __init__(self, fail: bool = False, block: bool = False) -> None:
        self.calls: list[tuple[str, str]] = []
        self.fail = fail
        self.release = threading.Event()
        if not block:
            self.release.set()

    def engine(self, voice: str, language: str) -> "StubEngine":
        return StubEngine(self, voice, language)


class StubEngine:
    splits = False
    phonemes = False

    def __init__(self, renderer: Renderer, voice: str, language: str) -> None:
        self.renderer, self.voice, self.language, self.id = renderer, voice, language, f"stub:{voice}"

    def problem(self) -> None:
        return None

    def synthesize(self, text: str, slowness: float) -> tuple[np.ndarray, int]:
        self.renderer.calls.append((text, self.voice))
        self.renderer.release.wait(10)
        if self.renderer.fail:
            raise TTSError("engine exploded")
        t = np.arange(4000) / 8000
        return (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 8000


def make_app(tmp_path: Path, renderer: Renderer | None = None, **config) -> Flask:
    """A bare app with only the prompts wired in (independent of the other modules)."""
    app = Flask("prompt-test")
    app.config.update({"TESTING": True, "IVR_PROMPTS_DIR": str(ROOT / "prompts"),
                       "IVR_PROMPT_CACHE_DIR": str(tmp_path / "cache"), "IVR_PUBLIC_URL": PUBLIC_URL,
                       "IVR_TTS_RATE": 150, "IVR_TTS_BUDGET_MS": 2000, **config})
    prompts.init_app(app)
    if renderer is not None:
        speakers = {"en": Speaker("en", renderer.engine("gmw/en-us", "en"), "en-US"),
                    "es": Speaker("es", renderer.engine("roa/es-419", "es"), "es-MX")}
        app.extensions[serving.AUDIO_EXTENSION] = PromptAudio(app.config["IVR_PROMPT_CACHE_DIR"], speakers)
    return app


def served(app: Flask, verb: ET.Element) -> bytes:
    """The bytes Twilio fetches for a <Play>."""
    response = app.test_client().get(urlsplit(verb.text).path)
    assert response.status_code == 200
    return response.data


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
    response = app.test_client().get(urlsplit(verb.text).path)
    assert response.status_code == 200
    assert response.mimetype == "audio/wav"
    audio = parse_wav(response.data)
    assert audio.sample_rate == 8000 and 0.5 < audio.duration < 1.5   # the tone, lead and tail silence
    assert response.cache_control.max_age >= 86400 and response.cache_control.public
    again = app.test_client().get(urlsplit(verb.text).path, headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304


def test_rendered_words_are_the_filled_prompt_in_the_catalogue_voice(tmp_path):
    renderer = Renderer()
    app = make_app(tmp_path, renderer)
    spoken(app, "queue_position", "es", position=2, minutes=4)
    spoken(app, "choose_language", "en")
    assert renderer.calls == [("Usted es el número 2 en la fila. La espera es de unos 4 minutos.", "roa/es-419"),
                              ("Para español, oprima 2 o diga español.", "roa/es-419")]


def test_cached_prompt_is_not_rendered_again(tmp_path):
    renderer = Renderer()
    app = make_app(tmp_path, renderer)
    first, second = spoken(app, "goodbye", "en"), spoken(app, "goodbye", "en")
    assert first.text == second.text and len(renderer.calls) == 1


@pytest.mark.parametrize("path", ["/prompts/audio/..%2F..%2Fetc%2Fpasswd.wav", "/prompts/audio/../../app.wav",
                                  "/prompts/audio/" + "A" * 32 + ".wav", "/prompts/audio/" + "a" * 32 + ".wav",
                                  "/prompts/audio/" + "a" * 31 + ".wav"])
def test_only_existing_hash_names_are_served(tmp_path, path):
    app = make_app(tmp_path, Renderer())
    assert app.test_client().get(path).status_code == 404


def test_render_failure_falls_back_to_say_in_the_right_language(tmp_path):
    app = make_app(tmp_path, Renderer(fail=True))
    verb = spoken(app, "busy", "es", department="Sanidad")
    assert verb.tag == "Say" and verb.get("language") == "es-MX"
    assert verb.text == "La línea de Sanidad está ocupada en este momento."


def test_failed_render_is_not_retried_on_every_call(tmp_path):
    renderer = Renderer(fail=True)
    app = make_app(tmp_path, renderer)
    assert spoken(app, "goodbye", "en").tag == "Say"
    assert spoken(app, "goodbye", "en").tag == "Say"
    assert len(renderer.calls) == 1


def test_budget_exceeded_says_now_and_plays_next_time(tmp_path):
    renderer = Renderer(block=True)
    app = make_app(tmp_path, renderer, IVR_TTS_BUDGET_MS=50)
    verb = spoken(app, "transferring", "en", department="Sanitation")
    assert verb.tag == "Say" and verb.get("language") == "en-US"
    renderer.release.set()
    app.extensions[serving.AUDIO_EXTENSION].wait_idle()
    assert spoken(app, "transferring", "en", department="Sanitation").tag == "Play"
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
    with app.app_context():
        audio = prompts.audio_ulaw("goodbye", "en")
        played = served(app, spoken(app, "goodbye", "en"))
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
    body = app.test_client().get(urlsplit(verb.text).path).data
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
