"""Vosk (Kaldi) recogniser: one `vosk.Model` per language per process, one KaldiRecognizer per call.

Finding a model, in order: the `IVR_VOSK_MODEL_<LANG>` path, `<IVR_MODELS_DIR>/<lang>/`, then
vosk's own cache (`~/.cache/vosk/vosk-model[-small]-<lang>…`, `/usr/share/vosk`, $VOSK_MODEL_PATH).
`download_model` fetches one through vosk's model list with its progress bar (`ivr models download`).
Grammars become Vosk's JSON phrase lists, restricted to words the model knows.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import threading
from pathlib import Path
from typing import Any, Mapping

from ivr.lang import dirs_beside, language_with_locale, locale
from ivr.speech.engines.base import (EngineUnavailable, Grammar, Partial, Result, SingleUse, Word, grammar_key,
                                     mean_confidence)

log = logging.getLogger(__name__)



def vosk_code(language: str, config: Mapping[str, Any] | None = None) -> str:
    """The code in vosk's model list for our `language` (its names read vosk-model-small-en-us-0.15):
    `vosk` in the locales of the language's file; the language code itself without one."""
    return locale(language, "vosk", dirs_beside((config or {}).get("IVR_RULES_PATH"))) or language


def _vosk() -> Any:
    # Kaldi's maths library would start a thread pool per decode; with one recogniser per call
    # on its own thread that oversubscribes the cores (measured: 2 streams took 2x as long as 1).
    # Only effective before libvosk loads, so the first import of vosk should come through here.
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    try:
        import vosk
    except ImportError as exc:
        raise EngineUnavailable("the vosk package is not installed: pip install 'vosk>=0.3.45'") from exc
    vosk.SetLogLevel(-1)   # Kaldi logs every model load at INFO to stderr; our log says what matters
    return vosk


def _is_model_dir(path: Path) -> bool:
    return path.is_dir() and (path / "am").is_dir() and (path / "conf").is_dir()


def find_model(language: str, config: Mapping[str, Any]) -> Path | None:
    """The model directory for `language`, or None. A configured path that is wrong is an error."""
    configured = config.get(f"IVR_VOSK_MODEL_{language.upper()}")
    if configured:
        path = Path(configured).expanduser()
        if not _is_model_dir(path):
            raise EngineUnavailable(f"IVR_VOSK_MODEL_{language.upper()}={configured} is not a Vosk model "
                                    "directory (it needs am/ and conf/ inside); fix the path or unset it")
        return path
    models_dir = Path(config.get("IVR_MODELS_DIR") or "models")
    code = vosk_code(language, config)
    for candidate in (models_dir / language, models_dir / code):
        if _is_model_dir(candidate):
            return candidate
    # An unzipped download keeps its own name (vosk-model-small-en-us-0.15): accept that too.
    try:
        vosk_dirs = list(_vosk().MODEL_DIRS)
    except EngineUnavailable:
        vosk_dirs = []
    for directory in [models_dir, *vosk_dirs]:
        found = _match_in(directory, code)
        if found:
            return found
    return None


def _match_in(directory: str | Path | None, code: str) -> Path | None:
    if directory is None or not Path(directory).is_dir():
        return None
    pattern = re.compile(rf"vosk-model(-small)?-{re.escape(code)}(-|$)")
    for entry in sorted(Path(directory).iterdir()):
        if pattern.match(entry.name) and _is_model_dir(entry):
            return entry
    return None


def missing_model_message(language: str) -> str:
    """What an admin should do when no Vosk model exists for `language`."""
    code = vosk_code(language)
    return (f"no Vosk model for {language!r}: run `ivr models download {code}` (needs internet), or unzip a "
            f"model from https://alphacephei.com/vosk/models into models/{language}/, or set "
            f"IVR_VOSK_MODEL_{language.upper()}=/path/to/model")


class VoskEngine:
    """A loaded Vosk model for one language; `recognizer()` is cheap and per call."""

    name = "vosk"

    def __init__(self, language: str, model_path: str | Path) -> None:
        vosk = _vosk()
        self.language = language
        self.model_path = Path(model_path)
        try:
            self._model = vosk.Model(str(self.model_path))
        except Exception as exc:  # vosk raises a bare Exception("Failed to create a model")
            raise EngineUnavailable(f"{self.model_path}: Vosk could not load this model ({exc}); "
                                    "re-download it with `ivr models download`") from exc
        self._kaldi = vosk.KaldiRecognizer
        self._grammar_cache: dict[str, str] = {}
        self._lock = threading.Lock()

    def knows(self, word: str) -> bool:
        """Whether the model's vocabulary has `word` (grammars may only use such words)."""
        return self._model.vosk_model_find_word(word) != -1

    def grammar_json(self, grammar: Grammar) -> str:
        """The grammar as Vosk's JSON phrase list, unknown words dropped, plus "[unk]" if the model has it."""
        with self._lock:
            key = f"{grammar.name}#{grammar_key(grammar)}"   # an edited file compiles anew
            cached = self._grammar_cache.get(key)
            if cached is None:
                phrases = [p for p in grammar.phrases if all(self.knows(w) for w in p.split())]
                if not phrases:
                    raise EngineUnavailable(f"grammar {grammar.name}: none of its words are in the "
                                            f"{self.language} Vosk model's vocabulary")
                dropped = len(grammar.phrases) - len(phrases)
                if dropped:
                    log.warning("grammar %s: %d phrase(s) use words the model lacks", grammar.name, dropped)
                # "[unk]" lets out-of-grammar speech come back as unknown instead of a forced match.
                if self.knows("[unk]"):
                    phrases.append("[unk]")
                cached = self._grammar_cache[key] = json.dumps(phrases, ensure_ascii=False)
            return cached

    def recognizer(self, sample_rate: int, grammar: Grammar | None = None) -> "VoskRecognizer":
        """A per-call recogniser; Vosk resamples `sample_rate` to the model's rate itself."""
        if grammar is None:
            kaldi = self._kaldi(self._model, float(sample_rate))
        else:
            kaldi = self._kaldi(self._model, float(sample_rate), self.grammar_json(grammar))
        return VoskRecognizer(kaldi, sample_rate)


class VoskRecognizer(SingleUse):
    """Wraps a KaldiRecognizer; keeps every finished segment so `finish` returns the whole turn."""

    def __init__(self, kaldi: Any, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self._kaldi = kaldi
        kaldi.SetWords(True)
        self._segments: list[dict] = []

    def accept(self, pcm16: bytes) -> Partial | None:
        """Decode a chunk; returns the running text when it changed."""
        self._check_open()
        if self._kaldi.AcceptWaveform(pcm16):
            # Vosk closed a segment on its own endpoint; the caller may still go on talking.
            self._keep(json.loads(self._kaldi.Result()))
            pending = ""
        else:
            pending = json.loads(self._kaldi.PartialResult()).get("partial", "").replace("[unk]", " ")
            pending = " ".join(pending.split())
        return self._changed(" ".join(t for t in [self._joined(), pending] if t))

    def finish(self) -> Result:
        """Flush Vosk and return the final text with word timings and confidences."""
        self._close()
        self._keep(json.loads(self._kaldi.FinalResult()))
        words = tuple(Word(w["word"], float(w["start"]), float(w["end"]), float(w["conf"]))
                      for segment in self._segments for w in segment.get("result", ())
                      if w["word"] != "[unk]")
        return Result(self._joined(), mean_confidence(words), words)

    def _keep(self, segment: dict) -> None:
        if segment.get("text"):
            self._segments.append(segment)

    def _joined(self) -> str:
        # "[unk]" is the grammar's catch-all for off-list speech: not words the caller said.
        return " ".join(w for s in self._segments for w in s["text"].split() if w != "[unk]")


def download_model(language: str, models_dir: str | Path, *, list_url: str | None = None) -> Path:
    """Download the small current Vosk model for `language` into `<models_dir>/<lang>/`.

    Uses vosk's model list and its downloader (tqdm progress bar). Offline, raises
    `EngineUnavailable` saying how to install a model by hand.
    """
    import requests

    vosk = _vosk()
    short = language_with_locale("vosk", language) or language   # `en-us` is downloaded into models/en/
    code = vosk_code(short)
    url = list_url or vosk.MODEL_LIST_URL
    target = Path(models_dir) / short
    if _is_model_dir(target):
        return target
    manual = (f"download a model zip for {code!r} from https://alphacephei.com/vosk/models on a machine "
              f"with internet, unzip it into {target}/ (so {target}/am exists), or set "
              f"IVR_VOSK_MODEL_{short.upper()}=/path/to/model")
    try:
        listing = requests.get(url, timeout=10)
        listing.raise_for_status()
        models = listing.json()
    except (requests.RequestException, ValueError) as exc:
        raise EngineUnavailable(f"cannot reach vosk's model list at {url} ({type(exc).__name__}); "
                                f"this machine looks offline. To install by hand: {manual}") from exc
    names = [m["name"] for m in models if m.get("lang") == code and m.get("type") == "small"
             and m.get("obsolete") == "false"]
    if not names:
        raise EngineUnavailable(f"vosk's model list has no current small model for {code!r}; "
                                f"see https://alphacephei.com/vosk/models. {manual}")
    staging = Path(models_dir) / names[0]
    try:
        _Downloader().download_model(staging)
    except OSError as exc:
        raise EngineUnavailable(f"downloading {names[0]} failed ({exc}); {manual}") from exc
    shutil.move(str(staging), str(target))
    return target


class _Downloader:
    """vosk.Model's download helpers without loading a model (they use no model state)."""

    def download_model(self, path: Path) -> None:
        _vosk().Model.download_model(self, path)

    def download_progress_hook(self, bar: Any) -> Any:
        return _vosk().Model.download_progress_hook(self, bar)
