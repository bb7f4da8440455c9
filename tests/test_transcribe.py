"""`transcribe_file`: a WAV file through the same recogniser a live call uses (for `ivr route --audio`)."""
from __future__ import annotations

import numpy as np
import pytest
import vosk

from ivr.speech.audio import Audio, AudioError, read_wav, resample, to_pcm16, write_wav
from ivr.speech.engines.base import EngineUnavailable
from ivr.speech.transcribe import transcribe_file
from speechgen import synthesize_phone_audio

SAID = "the street light in front of my house is out"


@pytest.fixture
def config(tmp_path, monkeypatch):
    monkeypatch.setattr(vosk, "MODEL_DIRS", [])
    return {"IVR_SPEECH_ENGINE": "auto", "IVR_MODELS_DIR": str(tmp_path / "models"),
            "IVR_SPEECH_CACHE_DIR": str(tmp_path / "cache")}


@pytest.mark.speech
def test_ulaw_phone_recording(rules, config):
    transcript, engine, confidence = transcribe_file(synthesize_phone_audio(SAID), "en", rules, config=config)
    assert engine == "whisper"          # auto: no Vosk model here, the packaged Whisper tiny.en
    assert "street light" in transcript.lower().replace("streetlight", "street light")
    assert 0.0 < confidence <= 1.0


@pytest.mark.speech
def test_pcm_wav_at_another_rate(rules, config, tmp_path):
    phone = read_wav(synthesize_phone_audio(SAID))
    samples = resample(np.frombuffer(phone.pcm16, "<i2"), 8000, 22050)
    path = write_wav(tmp_path / "pcm22k.wav", Audio(to_pcm16(samples), 22050))
    for engine_name in ("whisper", "pocketsphinx"):
        transcript, engine, _ = transcribe_file(path, "en", rules, config={**config, "IVR_SPEECH_ENGINE": engine_name})
        assert engine == engine_name
        assert "street light" in transcript.lower().replace("streetlight", "street light")


def test_no_local_recogniser_is_a_clear_error(rules, config, tmp_path):
    path = write_wav(tmp_path / "s.wav", Audio(b"\0\0" * 800, 8000))
    with pytest.raises(EngineUnavailable, match="no local recogniser for 'es' \\(engine: twilio\\)"):
        transcribe_file(path, "es", rules, config={**config, "IVR_SPEECH_ENGINE_ES": "twilio"})


def test_unreadable_audio_is_a_clear_error(rules, config, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not audio")
    with pytest.raises(AudioError, match="not a WAV file"):
        transcribe_file(path, "en", rules, config=config)
