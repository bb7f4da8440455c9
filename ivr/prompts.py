"""Prompts for the web layer: catalogue text, and the audio the caller hears.

`speak(verb, key, language, **values)` appends `<Play>` of the locally rendered WAV when it
exists or renders within IVR_TTS_BUDGET_MS, else `<Say language=…>` — the caller always
hears something. The catalogue itself is `ivr.prompts_catalogue` (pure); like the rules,
it is re-read when its files change, and a broken edit keeps the last good catalogue.
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, Mapping

from flask import Flask, current_app, has_request_context, url_for

from ivr.prompts_audio import PromptAudio
from ivr.prompts_catalogue import (KNOWN_PLACEHOLDERS, REQUIRED_KEYS, Catalogue, Prompt, PromptError,
                                   check_prompts, fill, load_catalogue, spell_digits, validate)
from ivr.routing.problems import ConfigError, Problem
from ivr.speech import tts

__all__ = ["init_app", "text", "speak", "audio_ulaw", "audio_url", "prompt", "say_language",
           "check_prompts", "spell_digits", "prompt_audio", "catalogue_now", "REQUIRED_KEYS", "KNOWN_PLACEHOLDERS",
           "PromptError"]

log = logging.getLogger(__name__)
EXTENSION = "ivr.prompts"
AUDIO_EXTENSION = "ivr.prompt_audio"
PATHS_EXTENSION = "ivr.prompt_audio_paths"
MAX_REMEMBERED_PATHS = 4096

#: Twilio <Say> language per catalogue language; IVR_SAY_LANGUAGE_<LANG> overrides.
SAY_LANGUAGES = {"en": "en-US", "es": "es-MX"}
#: How often (seconds) the catalogue files' mtimes are compared; a stat per file per second.
RELOAD_CHECK_S = 1.0


class CatalogueSource:
    """The catalogue of one prompts directory, re-read when a file in it changes."""

    def __init__(self, prompts_dir: str | Path) -> None:
        self.prompts_dir = Path(prompts_dir)
        self._lock = threading.Lock()
        self._stamp = self._mtimes()
        self._checked = time.monotonic()
        catalogue, problems = self._load()
        if problems:
            raise ConfigError(problems)
        self._catalogue: Catalogue = catalogue

    def _mtimes(self) -> tuple[tuple[str, int], ...]:
        return tuple(sorted((p.name, p.stat().st_mtime_ns) for p in self.prompts_dir.glob("*.yaml")))

    def _load(self) -> tuple[Catalogue, list[Problem]]:
        catalogue, problems = load_catalogue(self.prompts_dir)
        return catalogue, problems + validate(catalogue, self.prompts_dir)

    def current(self) -> Catalogue:
        """The newest valid catalogue (checks the files at most once per RELOAD_CHECK_S)."""
        if time.monotonic() - self._checked < RELOAD_CHECK_S or not self._lock.acquire(blocking=False):
            return self._catalogue
        try:
            self._checked = time.monotonic()
            stamp = self._mtimes()
            if stamp != self._stamp:
                self._stamp = stamp
                catalogue, problems = self._load()
                if problems:
                    log.error("prompt files changed but are invalid; keeping the last good prompts:\n%s",
                              "\n".join(str(p) for p in problems))
                else:
                    self._catalogue = catalogue
                    log.info("prompts reloaded from %s", self.prompts_dir)
        except OSError as exc:
            log.error("cannot check the prompt files (%s); keeping the last good prompts", exc)
        finally:
            self._lock.release()
        return self._catalogue


def init_app(app: Flask) -> None:
    """Load and check the catalogues of IVR_PROMPTS_DIR; refuse to start when they are broken."""
    source = CatalogueSource(app.config["IVR_PROMPTS_DIR"])
    app.extensions[EXTENSION] = source
    catalogue = source.current()
    app.extensions[AUDIO_EXTENSION] = audio_store(app.config, sorted(catalogue))
    if app.extensions[AUDIO_EXTENSION].unavailable:
        log.warning("prompts will use <Say>: %s", app.extensions[AUDIO_EXTENSION].unavailable)
    from ivr.web import prompt_audio  # the web edge depends on this module, not the reverse

    prompt_audio.init_app(app)


def audio_store(config: Mapping[str, Any], languages: list[str]) -> PromptAudio:
    """The rendered-audio cache configured by IVR_PROMPT_CACHE_DIR, IVR_TTS_VOICE_<LANG>, IVR_TTS_RATE.

    IVR_TTS=off disables rendering (every prompt is <Say>), e.g. for tests of the call flow.
    """
    voices = {lang: str(config.get(f"IVR_TTS_VOICE_{lang.upper()}") or tts.DEFAULT_VOICES.get(lang, lang))
              for lang in languages}
    disabled = str(config.get("IVR_TTS", "pyttsx3")).lower() in {"off", "none", "0", "false", "say"}
    unavailable = "rendering is off (IVR_TTS=off)" if disabled else tts.engine_problem()
    return PromptAudio(config["IVR_PROMPT_CACHE_DIR"], voices, int(config.get("IVR_TTS_RATE", 150)),
                       unavailable=unavailable)


def catalogue_now() -> Catalogue:
    """The current app's catalogue: language → key → Prompt."""
    return current_app.extensions[EXTENSION].current()


def prompt_audio() -> PromptAudio:
    """The current app's rendered-audio cache."""
    return current_app.extensions[AUDIO_EXTENSION]


def prompt(key: str, language: str) -> Prompt:
    """The catalogue entry for `key` in `language` (PromptError when there is none)."""
    catalogue = catalogue_now()
    if language not in catalogue:
        raise PromptError(f"no prompts for language '{language}'; have {', '.join(sorted(catalogue))}")
    try:
        return catalogue[language][key]
    except KeyError:
        raise PromptError(f"no prompt '{key}' in {language}; add it to prompts/{language}.yaml") from None


def text(key: str, language: str, **values: Any) -> str:
    """The words of prompt `key` in `language`, placeholders filled from `values`."""
    return fill(prompt(key, language), values)


def say_language(language: str) -> str:
    """The Twilio <Say language> for a catalogue language, e.g. "es" → "es-MX"."""
    override = current_app.config.get(f"IVR_SAY_LANGUAGE_{language.upper()}")
    return str(override or SAY_LANGUAGES.get(language, language))


def speak(verb: Any, key: str, language: str, **values: Any) -> None:
    """Append prompt `key` to a TwiML verb (VoiceResponse, Gather …) as <Play> or <Say>.

    Raises PromptError for a missing key or value (a bug in the flow); never raises
    because audio could not be rendered — that falls back to <Say>.
    """
    entry = prompt(key, language)
    words = fill(entry, values)
    url = audio_url(words, entry.voice)
    if url:
        verb.play(url)
    else:
        verb.say(words, language=say_language(entry.voice))


def audio_url(words: str, voice_language: str) -> str | None:
    """Absolute URL of `words` rendered in `voice_language`'s voice, rendering within the budget;
    None when there is no audio (yet) or no way to make an absolute URL."""
    name = _rendered(words, voice_language)
    if name is None:
        return None
    public = str(current_app.config.get("IVR_PUBLIC_URL") or "").rstrip("/")
    if public:
        return public + _audio_path(name)
    if has_request_context():
        return url_for("prompt_audio.audio", name=name, _external=True)
    log.warning("IVR_PUBLIC_URL is not set and there is no request; using <Say>")
    return None


def _audio_path(name: str) -> str:
    """url_for the audio of `name`, remembered per app: a webhook speaks several prompts and
    url_for costs more than the rest of building a <Play> (names are content hashes, so a
    name's path never changes)."""
    paths: dict[str, str] = current_app.extensions.setdefault(PATHS_EXTENSION, {})
    path = paths.get(name)
    if path is None:
        if len(paths) >= MAX_REMEMBERED_PATHS:
            paths.clear()   # prompts with many different values (queue positions): start over
        path = paths[name] = url_for("prompt_audio.audio", name=name)
    return path


def audio_ulaw(key: str, language: str, **values: Any) -> bytes | None:
    """Raw 8 kHz μ-law samples of a prompt for Media Streams, or None (then use <Say>/silence)."""
    entry = prompt(key, language)
    name = _rendered(fill(entry, values), entry.voice)
    if name is None:
        return None
    try:
        return prompt_audio().ulaw(name)
    except (OSError, ValueError) as exc:  # AudioError is a ValueError
        log.warning("prompt audio %s unreadable (%s)", name, exc)
        return None


def has_audio(key: str, language: str, **values: Any) -> bool:
    """True when the prompt's audio is rendered (rendering it now, within the budget).

    Media Streams play prompts themselves (so callers can barge in); the TwiML asks them to
    only when this holds, and otherwise speaks the prompt before the stream opens.
    """
    entry = prompt(key, language)
    return _rendered(fill(entry, values), entry.voice) is not None


def _rendered(words: str, voice_language: str) -> str | None:
    """Cache name of the rendered words, within IVR_TTS_BUDGET_MS; None on any failure."""
    budget_s = int(current_app.config.get("IVR_TTS_BUDGET_MS", 1500)) / 1000
    try:
        return prompt_audio().ensure(words, voice_language, budget_s)
    except (KeyError, ValueError, OSError, RuntimeError) as exc:  # a misconfigured voice must not cost the call
        log.warning("no audio for a %s prompt (%s); using <Say>", voice_language, exc)
        return None
