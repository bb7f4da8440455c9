"""pyttsx3 (the universal engine) rendering: real 8 kHz μ-law WAV files with speech in them; the μ-law/resampling helpers."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ivr.voices import pyttsx3_engine as tts
from ivr.voices import ulaw_payload
from ivr.speech.audio import Audio, parse_wav, pcm16_to_ulaw, wav_bytes

needs_engine = pytest.mark.skipif(tts.engine_problem() is not None and not os.environ.get("CI"),
                    reason=f"no TTS engine here (CI installs espeak-ng and runs these): {tts.engine_problem()}")


def wav_header(data: bytes) -> dict[str, int]:
    """Fields of the fmt chunk, read independently of the code under test."""
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    assert int.from_bytes(data[4:8], "little") == len(data) - 8
    position = 12
    while position < len(data):
        chunk, size = data[position:position + 4], int.from_bytes(data[position + 4:position + 8], "little")
        if chunk == b"fmt ":
            body = data[position + 8:position + 8 + size]
            return {"format": int.from_bytes(body[0:2], "little"), "channels": int.from_bytes(body[2:4], "little"),
                    "rate": int.from_bytes(body[4:8], "little"), "bits": int.from_bytes(body[14:16], "little")}
        position += 8 + size + size % 2
    raise AssertionError("no fmt chunk")


def speech_stats(wav: bytes) -> tuple[float, float, float]:
    """(seconds, RMS, share of 20 ms frames that are not silent) of a μ-law WAV."""
    samples = np.frombuffer(parse_wav(wav).pcm16, dtype="<i2").astype(np.float64)
    frames = samples[: samples.size // 160 * 160].reshape(-1, 160)
    voiced = float((np.sqrt((frames ** 2).mean(axis=1)) > 300).mean())
    return samples.size / 8000, float(np.sqrt((samples ** 2).mean())), voiced


@needs_engine
@pytest.mark.parametrize("text, voice", [
    ("Connecting you to Streets and Roads. Please hold.", "gmw/en-us"),
    ("Le comunico con Calles y Carreteras. Por favor, espere.", "roa/es-419"),
])
def test_rendered_file_is_mulaw_8khz_with_speech(text, voice):
    data = tts.render_wav(text, voice, 150)
    assert wav_header(data) == {"format": 7, "channels": 1, "rate": 8000, "bits": 8}
    seconds, rms, voiced = speech_stats(data)
    # ~9 words at 150 words/minute ≈ 3.6 s; allow the engine's own pacing.
    assert 1.5 < seconds < 8.0
    assert rms > 500 and voiced > 0.3


@needs_engine
def test_voices_differ_by_language():
    text = "Para español, oprima 2."
    assert tts.render_wav(text, "gmw/en-us", 150) != tts.render_wav(text, "roa/es-419", 150)


@needs_engine
def test_rate_changes_duration():
    text = "You are number three in line. The wait is about five minutes."
    slow, fast = (speech_stats(tts.render_wav(text, "gmw/en-us", rate))[0] for rate in (100, 220))
    assert slow > fast * 1.5


@needs_engine
def test_unknown_voice_is_refused_not_spoken_in_english():
    with pytest.raises(tts.TTSError, match="unknown voice 'klingon'"):
        tts.render_wav("Hello.", "klingon", 150)


def test_empty_text_is_refused():
    with pytest.raises(tts.TTSError, match="empty"):
        tts.render_wav("  ", "gmw/en-us", 150)


def test_timeout_is_a_tts_error():
    with pytest.raises(tts.TTSError, match="in time"):
        tts.render_wav("Hello there.", "gmw/en-us", 150, timeout_s=0.001)


def test_ulaw_payload_is_the_raw_samples():
    tone = (8000 * np.sin(np.arange(800) / 3)).astype("<i2").tobytes()
    payload = ulaw_payload(wav_bytes(Audio(tone, 8000), ulaw=True))
    assert payload == pcm16_to_ulaw(tone)


@needs_engine
def test_build_renders_once_and_skips_unchanged(tmp_path, monkeypatch):
    from ivr.cli import cli

    cache = tmp_path / "cache"
    monkeypatch.setenv("IVR_PROMPT_CACHE_DIR", str(cache))
    monkeypatch.setenv("IVR_RULES_PATH", str(tmp_path / "no-rules.yaml"))  # only placeholder-free prompts
    first = CliRunner().invoke(cli, ["prompts", "build", "--lang", "es"])
    assert first.exit_code == 0, first.output
    files = sorted(Path(cache).glob("*.wav"))
    assert len(files) >= 15 and all(wav_header(f.read_bytes())["format"] == 7 for f in files)
    second = CliRunner().invoke(cli, ["prompts", "build", "--lang", "es"])
    assert second.exit_code == 0 and f"{len(files)} already rendered, 0 to render" in second.output


def test_build_rejects_an_unknown_language(tmp_path, monkeypatch):
    from ivr.cli import cli

    monkeypatch.setenv("IVR_PROMPT_CACHE_DIR", str(tmp_path / "cache"))
    result = CliRunner().invoke(cli, ["prompts", "build", "--lang", "fr"])
    assert result.exit_code != 0 and "no catalogue for fr" in result.output
