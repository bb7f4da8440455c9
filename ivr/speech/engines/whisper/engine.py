"""The Whisper engine (one loaded model serving one language) and its per-call recogniser."""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ivr.speech.audio import resample
from ivr.speech.engines.base import EngineUnavailable, Grammar, Partial, Result, SingleUse
from ivr.speech.engines.whisper.hallucination import (MAX_COMPRESSION_RATIO, MIN_AVG_LOGPROB, NO_SPEECH_PROB, SPAN_PAD_S,
                                                      SPEECH_RMS, combine, max_tokens, peak_rms)
from ivr.speech.engines.whisper.models import (MODEL_RATE, ModelSpec, is_model_dir, load_faster_whisper,
                                               name_from_dir)
from ivr.speech.engines.whisper.prompt import PROMPT_TOKENS, PROMPT_WORDS, bias_prompt
from ivr.speech.engines.whisper.window import FULL_WINDOW_FRAMES, short_window, window_frames

#: The longest stretch of a caller's turn kept for decoding. Whisper decodes 30 s windows; a turn
#: longer than this is a ramble whose first minute says what it is about, and the cap bounds
#: both memory (≈ 1.9 MB of 8 kHz PCM) and decode time.
MAX_AUDIO_S = 60.0


def _default_threads() -> int:
    return int(os.environ.get("IVR_WHISPER_THREADS", "0")) or 1


def _default_workers() -> int:
    return int(os.environ.get("IVR_WHISPER_WORKERS", "0")) or max(1, os.cpu_count() or 1)


class WhisperEngine:
    """One loaded Whisper model serving one language; `recognizer()` is cheap and per call.

    CTranslate2 releases the GIL while decoding. `workers` decodes run side by side (the weights
    are shared, each worker has its own buffers), each on `threads` cores: on a 2-core machine two
    1-thread workers keep both cores busy under load, and one caller's decode still takes ~0.3–0.6 s.
    """

    name = "whisper"
    partials = False     # no partial results: `accept` never returns one; see `snapshot`

    def __init__(self, language: str, model: ModelSpec | str | Path, *, rules: Any = None,
                 threads: int | None = None, workers: int | None = None, prompt: str | None = None) -> None:
        faster_whisper = load_faster_whisper()
        spec = model if isinstance(model, ModelSpec) else ModelSpec(Path(model), name_from_dir(Path(model)), "path")
        if not is_model_dir(spec.path):
            raise EngineUnavailable(f"{spec.path} is not a Whisper model directory (model.bin, config.json, "
                                    "tokenizer.json)")
        self.language = language
        self.model_spec = spec
        self.threads = threads or _default_threads()
        self.workers = workers or _default_workers()
        self._model = _shared_model(faster_whisper, spec.path, self.threads, self.workers)
        if language != "en" and not self._model.model.is_multilingual:
            raise EngineUnavailable(f"Whisper {spec.name} ({spec.path}) is English-only; {language!r} needs a "
                                    "multilingual model (base, small …)")
        self.prompt = self.fit_prompt(self._bias_prompt(rules, language) if prompt is None else prompt)
        # faster-whisper's modules are imported only after `load_faster_whisper` has told the hub
        # client it is offline (and they are heavy: a process serving no Whisper never loads them).
        from faster_whisper.vad import VadOptions, get_speech_timestamps

        self._vad = VadOptions(threshold=0.5, min_speech_duration_ms=120, speech_pad_ms=100)
        self._speech_timestamps = get_speech_timestamps

    def _bias_prompt(self, rules: Any, language: str) -> str:
        """`bias_prompt` with a word budget that fits PROMPT_TOKENS, so no part is cut off the end.

        Words cost more tokens in some languages (Spanish accents): cutting the text would drop the
        intents' keywords that come after the emergency cues, so the budget shrinks instead.
        """
        words = PROMPT_WORDS
        while True:
            prompt = bias_prompt(rules, language, words)
            if words <= 20 or self.fit_prompt(prompt) == prompt:
                return prompt
            words = words * 9 // 10

    def fit_prompt(self, prompt: str) -> str:
        """`prompt` cut to PROMPT_TOKENS, so prompt plus the output cap fit Whisper's 448-token window."""
        tokenizer = self._model.hf_tokenizer
        words = prompt.split()
        while words and len(tokenizer.encode(" " + " ".join(words)).ids) > PROMPT_TOKENS:
            words = words[: max(1, len(words) * 9 // 10)] if len(words) > 1 else []
        return " ".join(words)

    @property
    def description(self) -> str:
        return f"whisper {self.model_spec.name} ({self.model_spec.where})"

    def warm(self) -> None:
        """Run one decode of a short tone so the first caller does not pay for lazy initialisation."""
        t = np.arange(MODEL_RATE // 2, dtype=np.float32) / MODEL_RATE
        self.transcribe(0.1 * np.sin(2 * np.pi * 220 * t).astype(np.float32), force=True)

    def recognizer(self, sample_rate: int, grammar: Grammar | None = None) -> "WhisperRecognizer":
        """A per-call recogniser. A grammar cannot constrain Whisper; its phrases join the prompt."""
        prompt = self.prompt
        if grammar is not None:
            prompt = self.fit_prompt(", ".join(grammar.phrases[:40]) + ". " + prompt)
        return WhisperRecognizer(self, sample_rate, prompt)

    def transcribe(self, audio16k: np.ndarray, prompt: str | None = None, *, force: bool = False) -> Result:
        """Decode float32 16 kHz mono audio; the checks in the module docstring decide what is kept."""
        if not force:
            audio16k = self.speech_span(audio16k)
        if audio16k.size == 0:
            return Result("", 0.0)
        segments, _info = self._model.transcribe(
            audio16k, language=self.language, task="transcribe", beam_size=1, best_of=1,
            temperature=0.0,                        # greedy; no sampling fallback that invents text
            condition_on_previous_text=False,       # a 30 s ramble cannot feed a loop into the next window
            initial_prompt=(prompt if prompt is not None else self.prompt) or None,
            without_timestamps=True, word_timestamps=False,
            vad_filter=False,                       # `speech_span` already did it, without cutting words
            no_speech_threshold=NO_SPEECH_PROB, log_prob_threshold=MIN_AVG_LOGPROB,
            compression_ratio_threshold=MAX_COMPRESSION_RATIO,
            max_new_tokens=max_tokens(audio16k.size / MODEL_RATE),
        )
        return combine(segments)

    def speech_span(self, audio16k: np.ndarray) -> np.ndarray:
        """The stretch from the first to the last speech silero VAD finds (plus `SPAN_PAD_S`), or
        nothing when it finds none or no 20 ms is loud enough to be speech.

        VAD is the gate, not the editor: faster-whisper's own `vad_filter` splices the speech
        chunks together, which clipped word edges on phone audio (measured: "el semáforo de la
        avenida" read as "el tema por el ámeneo" spliced, "el semáforo nera venida" whole), so
        the model gets the span unspliced.
        """
        if audio16k.size == 0 or peak_rms(audio16k) < SPEECH_RMS / 32768:
            return audio16k[:0]
        chunks = self._speech_timestamps(audio16k, self._vad)
        if not chunks:
            return audio16k[:0]
        pad = int(SPAN_PAD_S * MODEL_RATE)
        return audio16k[max(0, chunks[0]["start"] - pad): chunks[-1]["end"] + pad]


_models: dict[tuple[str, int, int], Any] = {}
_models_lock = threading.Lock()


def _shared_model(faster_whisper: Any, path: Path, threads: int, workers: int) -> Any:
    """One loaded model per directory per process: English and Spanish served by the same base
    model share its weights (and its memory) instead of loading it twice."""
    key = (str(path.resolve()), threads, workers)
    with _models_lock:
        if key not in _models:
            try:
                model = faster_whisper.WhisperModel(str(path), device="cpu", compute_type="int8",
                                                    cpu_threads=threads, num_workers=workers)
            except (RuntimeError, ValueError, OSError) as exc:
                raise EngineUnavailable(f"{path}: faster-whisper could not load this model ({exc})") from exc
            if window_frames() < FULL_WINDOW_FRAMES:
                model.encode = short_window(model.encode, window_frames())
            _models[key] = model
        return _models[key]


class WhisperRecognizer(SingleUse):
    """Buffers one caller's audio; decodes it in `finish` (or `snapshot`). Never returns partials."""

    def __init__(self, engine: WhisperEngine, sample_rate: int, prompt: str) -> None:
        if sample_rate <= 0:
            raise EngineUnavailable(f"sample rate must be positive, not {sample_rate}")
        self.sample_rate = sample_rate
        self._engine = engine
        self._prompt = prompt
        self._audio = bytearray()
        self._limit = int(MAX_AUDIO_S * sample_rate) * 2
        self._lock = threading.Lock()
        self.truncated = False

    def accept(self, pcm16: bytes) -> Partial | None:
        """Keep PCM16 at `sample_rate` for the decode; Whisper has no partial result to give."""
        self._check_open()
        with self._lock:
            room = self._limit - len(self._audio)
            if len(pcm16) > room:
                self.truncated = True
                pcm16 = pcm16[:max(room, 0)]
            self._audio += pcm16
        return None

    @property
    def buffered_s(self) -> float:
        """Seconds of audio held so far."""
        with self._lock:
            return len(self._audio) / (2 * self.sample_rate)

    def snapshot(self) -> Result:
        """Decode what has been heard so far without ending the utterance (more audio may follow)."""
        self._check_open()
        return self._decode()

    def finish(self) -> Result:
        """Decode the whole utterance once and close the recogniser."""
        self._close()
        return self._decode()

    def _decode(self) -> Result:
        with self._lock:
            pcm = bytes(self._audio[: len(self._audio) // 2 * 2])
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        audio16k = resample(samples, self.sample_rate, MODEL_RATE) if self.sample_rate != MODEL_RATE else samples
        return self._engine.transcribe(audio16k, self._prompt)
