"""`ivr voices download NAME`: more Piper voices, through piper's own voice list and downloader.

Online, the name is checked against piper's voices.json (so a typo gets suggestions, not a
404) and piper-tts's `download_voice` fetches `<name>.onnx` and `<name>.onnx.json` into the
voices directory. Offline (this city's servers may have no internet), nothing half-written is
left behind and the error says how to bring the two files in by hand.
"""
from __future__ import annotations

import difflib
import json
import shutil
import socket
import tempfile
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

from piper import download_voices

from ivr.voices.engine import TTSError
from ivr.voices.piper_engine import voice_language

#: Seconds before an unanswered connection counts as offline.
TIMEOUT_S = 20.0


class Offline(TTSError):
    """The voice list or the voice files could not be fetched."""


def offline_help(name: str, target: Path, why: str) -> str:
    """What to do when there is no network, in words an admin can follow."""
    return (f"cannot reach the Piper voice list ({why}).\n"
            f"This machine seems to be offline. On a machine with internet, run\n"
            f"    python -m piper.download_voices {name} --data-dir voices\n"
            f"then copy voices/{name}.onnx and voices/{name}.onnx.json into\n"
            f"    {target}/\n"
            f"(or set IVR_PIPER_VOICES_DIR to where they are), and run `ivr voices list` to check.")


def available() -> dict[str, dict]:
    """piper's voices.json: voice name → its description (language, quality, files)."""
    try:
        with urlopen(download_voices.VOICES_JSON, timeout=TIMEOUT_S) as response:
            return json.load(response)
    except (URLError, OSError, socket.timeout, ValueError) as exc:
        raise Offline(str(getattr(exc, "reason", exc))) from None


def download(name: str, target: Path) -> tuple[Path, str]:
    """Fetch voice `name` into `target`; returns (model path, language). Offline/ValueError on failure."""
    if not download_voices.VOICE_PATTERN.match(name):
        raise ValueError(f"'{name}' is not a Piper voice name; they look like es_MX-claude-high "
                         f"(<language>_<REGION>-<name>-<quality>)")
    try:
        voices = available()
    except Offline as exc:
        raise Offline(offline_help(name, target, str(exc))) from None
    if name not in voices:
        close = difflib.get_close_matches(name, list(voices), n=5, cutoff=0.5)
        same_language = sorted(v for v in voices if v.split("-")[0] == name.split("-")[0])[:8]
        hint = ", ".join(close or same_language) or "see `python -m piper.download_voices`"
        raise ValueError(f"piper has no voice '{name}'; try: {hint}")
    target.mkdir(parents=True, exist_ok=True)
    # Into a scratch directory first: an interrupted download never leaves a broken voice behind.
    with tempfile.TemporaryDirectory(dir=target, prefix=".download-") as scratch:
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(TIMEOUT_S)      # piper's downloader opens URLs without a timeout
        try:
            download_voices.download_voice(name, Path(scratch))
        except (URLError, OSError) as exc:
            raise Offline(offline_help(name, target, str(getattr(exc, "reason", exc)))) from None
        finally:
            socket.setdefaulttimeout(previous)
        for suffix in (".onnx", ".onnx.json"):
            shutil.move(str(Path(scratch) / f"{name}{suffix}"), target / f"{name}{suffix}")
    model = target / f"{name}.onnx"
    return model, voice_language(model.with_name(model.name + ".json"))
