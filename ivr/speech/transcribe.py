"""Recognise a WAV file with the same engine a live call would use (`ivr route --audio`).

The file is fed in 20 ms chunks, exactly as Media Streams frames arrive, so a transcript here is
what the line would have heard. Engines are cached per process: `--batch` loads each model once.
"""
from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping

from ivr.config import PROJECT_ROOT, from_environment
from ivr.routing.preview import Router
from ivr.routing.rules import Rules
from ivr.speech.audio import read_wav
from ivr.speech.emergency import emergency_in_alternatives
from ivr.speech.engines.base import EngineUnavailable, Grammar, Result
from ivr.speech.service import SpeechService

_CHUNK_SECONDS = 0.02
_services: dict[tuple[int, str], SpeechService] = {}
_lock = threading.Lock()


def _service(rules: Rules, config: Mapping[str, Any]) -> SpeechService:
    key = (id(rules), str(sorted((k, str(v)) for k, v in config.items() if k.startswith("IVR_"))))
    with _lock:
        if key not in _services:
            cache = Path(config.get("IVR_SPEECH_CACHE_DIR") or PROJECT_ROOT / "instance" / "speech-cache")
            _services[key] = SpeechService(config, lambda: rules, cache)
        return _services[key]


def transcribe_file(path: str | Path, language: str, rules: Rules, *,
                    config: Mapping[str, Any] | None = None,
                    grammar: Grammar | None = None) -> tuple[str, str, float]:
    """(transcript, engine name, ASR confidence 0..1) for a WAV file (μ-law or PCM, any rate).

    `config` defaults to the IVR_* environment (IVR_SPEECH_ENGINE, IVR_VOSK_MODEL_<LANG>, …).
    Raises `AudioError` for unreadable audio and `EngineUnavailable` when no local recogniser
    exists for `language` (Twilio's recognition only runs inside a live call).
    """
    result, engine = recognize_file(path, language, rules, config=config, grammar=grammar)
    return result.text, engine, result.confidence


def recognize_file(path: str | Path, language: str, rules: Rules, *,
                   config: Mapping[str, Any] | None = None,
                   grammar: Grammar | None = None) -> tuple[Result, str]:
    """The recogniser's whole `Result` (with the emergency watch's alternatives) and the engine name.

    Same arguments and errors as `transcribe_file`.
    """
    if config is None:
        config = from_environment()
    audio = read_wav(path)
    service = _service(rules, config)
    engine = service.engine_for(language)
    if engine is None or engine.name not in ("vosk", "whisper", "pocketsphinx"):
        raise EngineUnavailable(
            f"no local recogniser for {language!r} (engine: {service.choose(language)}): "
            "audio files need Vosk, Whisper or, for English, pocketsphinx; set IVR_SPEECH_ENGINE=auto or "
            f"install a model with `ivr models download`")
    recognizer = engine.recognizer(audio.sample_rate, grammar)
    step = int(audio.sample_rate * _CHUNK_SECONDS) * 2
    for start in range(0, len(audio.pcm16), step):
        recognizer.accept(audio.pcm16[start:start + step])
    return recognizer.finish(), engine.name


def route_audio(router: Router, audio: Path, language: str, now: datetime) -> dict[str, Any]:
    """Recognise the recording at `audio`, then route what was heard (`ivr route --audio`, the console)."""
    heard, engine = recognize_file(str(audio), language, router.rules)
    transcript, asr_confidence = heard.text, heard.confidence
    watched = emergency_in_alternatives(router.classifier, heard, language)
    result = router.route(transcript, language, now, asr_confidence, watched)
    if watched and result["action"] == "emergency":
        result["explanation"] = f"emergency: {watched}"
    result.update(transcript=transcript, engine=engine, asr_confidence=asr_confidence)
    return result
