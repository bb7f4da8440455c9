"""Voices: real Piper renders, the pronunciation lexicon, speaking style, fallbacks, `ivr prompts say`,
`ivr voices download` offline. Audio is checked by reading the WAV bytes, not by trusting the code."""
from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from flask import Flask
from twilio.twiml.voice_response import VoiceResponse

from ivr import prompts
from ivr.cli import cli
from ivr.prompts import serving
from ivr.speech.audio import parse_wav
from ivr.voices import Lexicon, level_db, lexicon, pyttsx3_engine, style, telephone
from ivr.voices import speaker_for as speaker
from ivr.voices.piper_engine import PiperEngine

ROOT = Path(__file__).resolve().parent.parent
PUBLIC_URL = "https://ivr.example.test"
needs_espeak = pytest.mark.skipif(pyttsx3_engine.engine_problem() is not None,
                                  reason=f"pyttsx3 cannot speak here: {pyttsx3_engine.engine_problem()}")


def header(data: bytes) -> dict[str, int]:
    """The WAV fmt chunk, read here rather than by the code under test."""
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    position = 12
    while position < len(data):
        chunk, size = data[position:position + 4], int.from_bytes(data[position + 4:position + 8], "little")
        if chunk == b"fmt ":
            body = data[position + 8:position + 8 + size]
            return {"format": int.from_bytes(body[0:2], "little"), "channels": int.from_bytes(body[2:4], "little"),
                    "rate": int.from_bytes(body[4:8], "little"), "bits": int.from_bytes(body[14:16], "little")}
        position += 8 + size + size % 2
    raise AssertionError("no fmt chunk")


def samples(wav: bytes) -> np.ndarray:
    return np.frombuffer(parse_wav(wav).pcm16, dtype="<i2").astype(np.float64)


def lexicon_of(text: str) -> Lexicon:
    found, problems = lexicon.parse(yaml.compose(text), "test.yaml")
    assert problems == []
    return found


def config(tmp_path: Path, **extra) -> dict:
    return {"IVR_PROMPT_CACHE_DIR": str(tmp_path / "cache"), "IVR_MODELS_DIR": str(tmp_path / "models"),
            "IVR_TTS_RATE": 150, **extra}


# --- real rendering -------------------------------------------------------------------------


def test_piper_renders_real_8khz_mulaw_of_plausible_length(tmp_path):
    english = speaker(config(tmp_path), "en")
    assert english.engine is not None and english.engine.id.startswith("piper:en_US-joe-medium")
    wav = english.render("Connecting you to a person. Please hold.")
    assert header(wav) == {"format": 7, "channels": 1, "rate": 8000, "bits": 8}
    audio = samples(wav)
    seconds = audio.size / 8000
    assert 1.8 < seconds < 5.0          # 7 words, two sentences, lead and tail silence
    frames = audio[: audio.size // 160 * 160].reshape(-1, 160)
    voiced = (np.sqrt((frames ** 2).mean(axis=1)) > 300).mean()
    assert 0.3 < voiced < 0.95          # speech, with pauses in it
    assert np.all(audio[:400] == audio[0]) or np.abs(audio[:400]).max() < 50    # starts with silence


def test_every_prompt_comes_out_equally_loud(tmp_path):
    english = speaker(config(tmp_path), "en")
    levels = [level_db(samples(english.render(text))) for text in
              ("Goodbye.", "For Streets and Roads, press 1.",
               "Please leave a message after the tone. Say your name, your phone number, and the address.")]
    assert max(levels) - min(levels) < 1.0
    assert all(abs(level - telephone.TARGET_DBFS) < 1.0 for level in levels)


def test_the_same_words_render_the_same_bytes(tmp_path):
    first, second = speaker(config(tmp_path), "en"), speaker(config(tmp_path), "en")   # no shared pieces
    assert first.render("Thank you for calling.") == second.render("Thank you for calling.")


@pytest.fixture
def synthesised(monkeypatch) -> list[str]:
    """Every text Piper is asked to synthesise, in order (Piper still synthesises it)."""
    said: list[str] = []
    real = PiperEngine.synthesize

    def counting(self, text, slowness):
        said.append(text)
        return real(self, text, slowness)
    monkeypatch.setattr(PiperEngine, "synthesize", counting)
    return said


def test_shared_pieces_are_synthesised_once(tmp_path, synthesised):
    english = speaker(config(tmp_path), "en")
    said = synthesised
    english.render("Connecting you to Sanitation. Please hold.")
    english.render("Connecting you to Public Health. Please hold.")
    assert said == ["Connecting you to Sanitation.", "Please hold.", "Connecting you to Public Health."]


def test_a_case_number_is_said_digit_by_digit_from_pieces_synthesised_once(tmp_path, synthesised):
    """Per-call numbers cost no synthesis once the digits are warm (Speaker.warm at start)."""
    english = speaker(config(tmp_path), "en")
    said = synthesised
    english.warm()
    english.render("Your case number is: 6 9 8, 2 0 9 3.")
    english.render("Your case number is: 4 1 5, 7 5 8 6.")
    assert said == list("0123456789") + ["Your case number is:"]
    pieces = english.pieces("Your case number is: 6 9 8, 2 0 9 3.")
    assert [(p.text, p.pause_after_s) for p in pieces] == [
        ("Your case number is:", style.COMMA_PAUSE_S), ("6", style.DIGIT_PAUSE_S), ("9", style.DIGIT_PAUSE_S),
        ("8", style.COMMA_PAUSE_S), ("2", style.DIGIT_PAUSE_S), ("0", style.DIGIT_PAUSE_S), ("9", style.DIGIT_PAUSE_S),
        ("3", style.SENTENCE_PAUSE_S)]


def test_an_engine_that_speaks_whole_prompts_keeps_the_groups_punctuation():
    """pyttsx3 (a process per render) gets the text whole: espeak pauses at the group's comma itself."""
    assert [p.text for p in style.pieces("Again: 6 9 8, 2 0 9 3.", digits_apart=False)] == ["Again:", "6 9 8,", "2 0 9 3."]


# --- lexicon --------------------------------------------------------------------------------


def test_lexicon_respells_spells_digits_and_keeps_whole_words():
    entries = lexicon_of('{"St.": Street, "311": {digits: true}, Wacker: {say: Wocker, phonemes: "wˈɑːkɚ"},'
                         ' "DMV": {say: "D M V", match_case: true}}')
    assert entries.apply("Call 311 about 5 Wacker St. today") == "Call 3 1 1 about 5 Wocker Street today"
    assert entries.apply("Wacker Drive", phonemes=True) == "[[ wˈɑːkɚ ]] Drive"
    assert entries.apply("Stwacker 3110 dmv DMV") == "Stwacker 3110 dmv D M V"
    assert entries.apply("It is on Main St.") == "It is on Main Street."    # the dot also ended the sentence


@pytest.mark.parametrize("text, message", [
    ('{"St.": {say: Street, colour: red}}', "unknown field(s) colour"),
    ('{"abc": {digits: true}}', "digits: true needs digits"),
    ('{Wacker: {phonemes: "wˈɑːkɚ"}}', "say is missing"),
    ('{"311": {digits: maybe}}', "digits must be true or false"),
    ('{"St.": "<b>Street</b>"}', "not allowed"),
    ('{"St.": Street, "st.": Saint}', "given twice"),
    ('[St., Street]', "must be a mapping"),
])
def test_lexicon_mistakes_are_reported_with_a_line(text, message):
    _, problems = lexicon.parse(yaml.compose(text), "es.yaml")
    assert len(problems) == 1 and message in problems[0].message and problems[0].path == "es.yaml"


def test_ivr_check_validates_pronunciations(tmp_path):
    shutil.copytree(ROOT / "prompts", tmp_path / "prompts")
    english = tmp_path / "prompts" / "en.yaml"
    english.write_text(english.read_text(encoding="utf-8") + '  "Blvd": {say: Boulevard, phonemes: "bʊlɛvɑːɹd☃"}\n'
                       '  "Ave": {colour: blue}\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["check", "--prompts-dir", str(tmp_path / "prompts")])
    assert result.exit_code == 1
    assert "pronunciation of 'Ave': unknown field(s) colour" in result.output
    assert "phonemes ☃ are not in the en_US-joe-medium voice" in result.output


def test_the_lexicon_changes_what_is_rendered(tmp_path):
    plain = speaker(config(tmp_path), "en")
    fixed = speaker(config(tmp_path), "en", lambda: lexicon_of('{"Dept.": Department}'))
    text = "Call the Dept. of Water."
    assert [p.text for p in fixed.pieces(text)] == ["Call the Department of Water."]
    assert [p.text for p in plain.pieces(text)] == ["Call the Dept.", "of Water."]   # read as a sentence end
    assert plain.key(text) != fixed.key(text)
    assert plain.key("Goodbye.") == fixed.key("Goodbye.")          # untouched prompts keep their files
    assert plain.render(text) != fixed.render(text)


def test_piper_reads_the_lexicon_ipa(tmp_path):
    ipa = speaker(config(tmp_path), "en", lambda: lexicon_of('{Xq: {say: Zed Queue, phonemes: "wˈʌn"}}'))
    assert ipa.pieces("Press Xq.")[0].text == "Press [[ wˈʌn ]]."
    assert header(ipa.render("Press Xq."))["rate"] == 8000


def test_say_gets_the_lexicon_as_ssml_and_plain_voices_the_respelling(tmp_path):
    entries = lexicon_of('{"St.": Street, "311": {digits: true}, Wacker: {say: Wocker, phonemes: "wˈɑːkɚ"}}')
    polly = speaker(config(tmp_path, IVR_TTS="off"), "en", lambda: entries)
    response = VoiceResponse()
    polly.say_into(response, "City 311 on Wacker St., call 312-555-0101.")
    (say,) = ET.fromstring(str(response))
    assert say.get("voice") == "Polly.Joanna-Neural" and "".join(say.itertext()) == \
        "City 311 on Wacker St., call 312-555-0101."
    assert [(child.tag, dict(child.attrib), child.text) for child in say] == [
        ("say-as", {"interpret-as": "digits"}, "311"), ("phoneme", {"alphabet": "ipa", "ph": "wˈɑːkɚ"}, "Wacker"),
        ("sub", {"alias": "Street"}, "St."), ("say-as", {"interpret-as": "telephone"}, "312-555-0101")]
    plain = speaker(config(tmp_path, IVR_TTS="off", IVR_SAY_VOICE_EN=""), "en", lambda: entries)
    response = VoiceResponse()
    plain.say_into(response, "City 311 on Wacker St.")
    (say,) = ET.fromstring(str(response))
    assert say.text == "City 3 1 1 on Wocker Street." and say.get("voice") is None


# --- style ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text, spoken", [
    ("Call 312-555-0101.", "Call 3 1 2, 5 5 5, 0 1 0 1."),
    ("Call (312) 555 0101 now", "Call 3 1 2, 5 5 5, 0 1 0 1 now"),
    ("Your case is SR-2024-00123.", "Your case is S R, 2 0 2 4, 0 0 1 2 3."),
    ("Reference 1234567.", "Reference 1 2 3 4, 5 6 7."),
    ("Open 8 AM to 4:30 PM, 2 minutes, 2024.", "Open 8 AM to 4:30 PM, 2 minutes, 2024."),
])
def test_phone_and_case_numbers_are_read_digit_by_digit_in_groups(text, spoken):
    assert style.numbers_digit_by_digit(text) == spoken


def test_pauses_at_commas_and_sentences_and_numbers_slower():
    pieces = style.pieces("For trash, press 2. Thank you.")
    assert [(p.text, p.slow, p.pause_after_s) for p in pieces] == [
        ("For trash,", True, style.COMMA_PAUSE_S), ("press 2.", True, style.SENTENCE_PAUSE_S),
        ("Thank you.", False, style.SENTENCE_PAUSE_S)]


def test_a_menu_option_is_spoken_slower_than_the_same_words_without_a_number(tmp_path):
    english = speaker(config(tmp_path), "en")
    with_number = samples(english.render("For parking, press 4."))
    without = samples(english.render("For parking, press for."))
    assert with_number.size > without.size * 1.05


# --- fallbacks: rendered file, then pyttsx3, then <Say>; never silence ------------------------


def test_missing_neural_voice_falls_back_to_pyttsx3_then_say(tmp_path, monkeypatch):
    missing = config(tmp_path, IVR_PIPER_VOICE_EN="en_US-nobody-medium")
    chosen = speaker(missing, "en")
    assert "Piper voice en_US-nobody-medium is not installed" in chosen.skipped[0]
    if pyttsx3_engine.engine_problem() is None:
        assert chosen.engine is not None and chosen.engine.id.startswith("pyttsx3:gmw/en-us")
        assert header(chosen.render("Goodbye."))["format"] == 7
    monkeypatch.setattr(pyttsx3_engine, "engine_problem", lambda: "espeak-ng is not installed")
    neither = speaker(missing, "en")
    assert neither.engine is None and len(neither.skipped) == 2
    app = make_app(tmp_path, IVR_PIPER_VOICE_EN="en_US-nobody-medium")
    verb = spoken(app, "operator", "en")
    assert verb.tag == "Say" and "".join(verb.itertext()) == "Connecting you to a person. Please hold."


def test_an_engine_failing_mid_call_is_said_not_silent(tmp_path, monkeypatch):
    app = make_app(tmp_path)

    def broken(self, text, slowness):
        raise pyttsx3_engine.TTSError("onnxruntime fell over")
    monkeypatch.setattr(PiperEngine, "synthesize", broken)
    first = spoken(app, "goodbye", "en")     # the webhook does not wait: a render-on-fetch <Play>
    assert first.tag == "Play"
    fetched = app.test_client().get(first.text)   # the render fails at Twilio's fetch: silence, not an error
    assert fetched.status_code == 200 and "no-store" in fetched.headers["Cache-Control"]
    verb = spoken(app, "goodbye", "en")      # from then on the failure is remembered: <Say>
    assert verb.tag == "Say" and "".join(verb.itertext()) == "Thank you for calling. Goodbye."
    with app.app_context():
        assert prompts.audio_ulaw("goodbye", "en") is None     # Media Streams then <Say> before the stream


def test_engine_say_is_twilio_say_with_the_configured_voice(tmp_path):
    app = make_app(tmp_path, IVR_TTS_ENGINE_ES="say", IVR_SAY_VOICE_ES="Polly.Lupe-Neural")
    verb = spoken(app, "goodbye", "es")
    assert (verb.tag, verb.get("voice"), verb.get("language")) == ("Say", "Polly.Lupe-Neural", "es-MX")
    assert spoken(app, "goodbye", "en").tag == "Play"


def test_a_language_added_while_running_is_said_in_twilios_voice(tmp_path):
    app = make_app(tmp_path)
    del app.extensions[serving.AUDIO_EXTENSION].speakers["es"]     # as if es.yaml appeared after start
    with app.test_request_context():
        response = VoiceResponse()
        serving.say(response, "Gracias por llamar.", "es")
    (verb,) = ET.fromstring(str(response))
    assert (verb.tag, verb.get("language"), verb.text) == ("Say", "es", "Gracias por llamar.")


def test_an_unknown_engine_name_is_refused(tmp_path):
    with pytest.raises(ValueError, match="IVR_TTS_ENGINE_EN='festival'"):
        speaker(config(tmp_path, IVR_TTS_ENGINE_EN="festival"), "en")


# --- Spanish calls hear only Spanish ----------------------------------------------------------


def test_an_english_voice_never_speaks_spanish(tmp_path):
    chosen = speaker(config(tmp_path, IVR_PIPER_VOICE_ES="en_US-joe-medium"), "es")
    assert "speaks 'en', not 'es'" in chosen.skipped[0]
    assert chosen.engine is None or chosen.engine.language == "es"
    assert chosen.say_language == "es-MX" and chosen.say_voice == "Polly.Mia-Neural"


@needs_espeak
def test_every_spanish_prompt_is_rendered_by_a_spanish_voice(tmp_path):
    app = make_app(tmp_path)
    store = app.extensions[serving.AUDIO_EXTENSION]
    assert store.speaker("es").engine.language == "es" and store.speaker("en").engine.language == "en"
    with app.app_context():
        spanish = serving.catalogue_now()["es"]
        english_invitation = serving.catalogue_now()["en"]["choose_language"]
    assert all(prompt.voice == "es" for prompt in spanish.values())
    assert english_invitation.voice == "es"        # "Para español, oprima 2" in the Spanish voice
    verb = spoken(app, "no_match", "es")
    assert verb.tag == "Play"
    played = served(app, verb)    # rendered by its fetch at the latest
    rendered = store.path(store.name(spanish["no_match"].text, "es")).read_bytes()
    assert played == rendered and header(rendered)["rate"] == 8000


# --- ivr prompts say ----------------------------------------------------------------------------


def test_prompts_say_writes_what_the_line_plays(tmp_path, monkeypatch):
    monkeypatch.setenv("IVR_PROMPT_CACHE_DIR", str(tmp_path / "cli-cache"))
    monkeypatch.setenv("IVR_MODELS_DIR", str(tmp_path / "models"))
    out = tmp_path / "preview.wav"
    result = CliRunner().invoke(cli, ["prompts", "say", "Connecting you to a person. Please hold.",
                                      "--lang", "en", "-o", str(out)])
    assert result.exit_code == 0, result.output
    # A separate app with its own, empty cache renders the same prompt for a caller.
    app = make_app(tmp_path)
    played = served(app, spoken(app, "operator", "en"))
    assert out.read_bytes() == played and header(played)["format"] == 7


def test_prompts_say_explains_a_language_that_only_says(tmp_path, monkeypatch):
    monkeypatch.setenv("IVR_PROMPT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("IVR_TTS_ENGINE_ES", "say")
    result = CliRunner().invoke(cli, ["prompts", "say", "Llame al 311.", "--lang", "es", "-o",
                                      str(tmp_path / "x.wav")])
    assert result.exit_code == 1 and 'Twilio <Say voice="Polly.Mia-Neural" language="es-MX">' in result.output
    assert "Llame al 3 1 1." in result.output and not (tmp_path / "x.wav").exists()


def test_prompts_say_rejects_an_unknown_language(tmp_path, monkeypatch):
    monkeypatch.setenv("IVR_PROMPT_CACHE_DIR", str(tmp_path / "cache"))
    result = CliRunner().invoke(cli, ["prompts", "say", "Bonjour.", "--lang", "fr"])
    assert result.exit_code == 2 and "no catalogue for 'fr'" in result.output


# --- ivr voices download, offline -----------------------------------------------------------------


def test_voices_download_offline_says_what_to_do_and_leaves_nothing(tmp_path, monkeypatch):
    # All HTTP(S) goes to a local port nobody listens on: no network is touched.
    for name in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    target = tmp_path / "voices"
    result = CliRunner().invoke(cli, ["voices", "download", "es_MX-claude-high", "--dir", str(target)])
    assert result.exit_code == 1
    assert "offline" in result.output and "python -m piper.download_voices es_MX-claude-high" in result.output
    assert f"{target}/" in result.output and "es_MX-claude-high.onnx.json" in result.output
    assert not target.exists() or not any(target.iterdir())


def test_voices_download_rejects_a_malformed_name_without_the_network(tmp_path):
    result = CliRunner().invoke(cli, ["voices", "download", "spanish", "--dir", str(tmp_path)])
    assert result.exit_code == 1 and "like es_MX-claude-high" in result.output


def test_a_downloaded_voice_is_found_and_used_for_its_language(tmp_path):
    # A voice copied in by hand (what the offline instructions say): the packaged English model
    # under a Spanish name with a Spanish config stands in for a real Spanish voice.
    voices = tmp_path / "models" / "piper"
    voices.mkdir(parents=True)
    english = PiperEngine("en_US-joe-medium")
    shutil.copyfile(english.files[0], voices / "es_MX-test-medium.onnx")
    settings = json.loads(english.files[1].read_text(encoding="utf-8"))
    settings["language"] = {"code": "es_MX", "family": "es"}
    (voices / "es_MX-test-medium.onnx.json").write_text(json.dumps(settings), encoding="utf-8")
    chosen = speaker(config(tmp_path), "es")
    assert chosen.engine is not None and chosen.engine.id.startswith("piper:es_MX-test-medium")
    result = CliRunner().invoke(cli, ["voices", "list"], env={"IVR_MODELS_DIR": str(tmp_path / "models")})
    assert "es_MX-test-medium  [es]" in result.output and "es: piper:es_MX-test-medium" in result.output


# --- helpers ------------------------------------------------------------------------------------


def make_app(tmp_path: Path, **extra) -> Flask:
    app = Flask("voices-test")
    app.config.update({"TESTING": True, "IVR_PROMPTS_DIR": str(ROOT / "prompts"), "IVR_PUBLIC_URL": PUBLIC_URL,
                       "IVR_TTS_FETCH_WAIT_MS": 20000, **config(tmp_path), **extra})
    prompts.init_app(app)
    return app


def spoken(app: Flask, key: str, language: str, **values) -> ET.Element:
    with app.test_request_context():
        response = VoiceResponse()
        prompts.speak(response, key, language, **values)
    (verb,) = list(ET.fromstring(str(response)))
    return verb


def served(app: Flask, verb: ET.Element) -> bytes:
    """What Twilio fetches for a <Play>: the file, or (not rendered yet) its render on fetch."""
    url = urlsplit(verb.text)
    response = app.test_client().get(url.path, query_string=url.query)
    assert response.status_code == 200 and response.mimetype == "audio/wav"
    return response.data
