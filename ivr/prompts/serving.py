"""Prompts in the running app: the words of a prompt, the audio the caller hears, and its URL.

`speak(verb, key, language, **values)` appends `<Play>` of the locally rendered WAV when it
exists or renders within IVR_TTS_BUDGET_MS, else `<Say language=…>` — the caller always
hears something. GET /prompts/audio/<name>.wav serves the rendered files Twilio fetches.

Names are content hashes (see ivr.prompts.cache), so a file never changes: it is served as
immutable with an ETag. Only names matching the hash pattern are looked up, which rules out
path traversal. No signature check: prompts are public words, and Twilio sends none of its
webhook parameters when it fetches a <Play> URL. Twilio accepts audio/wav for <Play> and obeys
standard HTTP caching headers (twilio.com/docs/voice/twiml/play).
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

from flask import Blueprint, Flask, abort, current_app, has_request_context, send_file, url_for
from flask.typing import ResponseReturnValue

from ivr import metrics
from ivr.prompts.cache import NAME_PATTERN, PromptAudio, audio_store
from ivr.prompts.catalogue import Catalogue, CatalogueSource, Prompt, PromptError, fill

log = logging.getLogger(__name__)
EXTENSION = "ivr.prompts"
AUDIO_EXTENSION = "ivr.prompt_audio"
PATHS_EXTENSION = "ivr.prompt_audio_paths"
MAX_REMEMBERED_PATHS = 4096

#: One year: a file's URL changes whenever the words, voice or rate change.
MAX_AGE_S = 365 * 24 * 3600

bp = Blueprint("prompt_audio", __name__)


def init_app(app: Flask) -> None:
    """Load and check the catalogues of IVR_PROMPTS_DIR; refuse to start when they are broken."""
    source = CatalogueSource(app.config["IVR_PROMPTS_DIR"])
    app.extensions[EXTENSION] = source
    catalogue = source.current()
    store = app.extensions[AUDIO_EXTENSION] = audio_store(app.config, sorted(catalogue), source.lexicon)
    if store.unavailable:
        log.warning("prompts will use <Say>: %s", store.unavailable)
    if app.config.get("IVR_WARM", True):      # ivr worker / CLI: no caller waits for a voice here
        store.warm_up()
    for language, speaker in sorted(store.speakers.items()):
        if speaker.engine is None:
            log.warning("%s prompts will use <Say> (%s): %s", language, speaker.say_voice or "Twilio's voice",
                        "; ".join(speaker.skipped) or "IVR_TTS_ENGINE says so")
    app.register_blueprint(bp)


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
    if override:
        return str(override)
    try:
        return prompt_audio().speaker(language).say_language
    except KeyError:
        return language


def say(verb: Any, words: str, language: str) -> None:
    """Append `words` as <Say> in `language`'s <Say> voice, through its pronunciations."""
    try:
        speaker = prompt_audio().speaker(language)
    except KeyError:   # a language file added while running: no voice set up yet, Twilio's default
        verb.say(words, language=language)
        return
    speaker.say_into(verb, words)


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
        metrics.SAY_FALLBACKS.inc()
        say(verb, words, entry.voice)


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


@bp.get("/prompts/audio/<string:name>.wav")
def audio(name: str) -> ResponseReturnValue:
    """The WAV file of a rendered prompt (audio/wav, cacheable), or 404."""
    if not NAME_PATTERN.fullmatch(name):
        abort(404)
    path = prompt_audio().path(name)
    if not path.is_file():
        abort(404)
    # The name is a hash of the content, so it is the strongest possible ETag.
    response = send_file(path, mimetype="audio/wav", conditional=True, etag=name, max_age=MAX_AGE_S)
    response.cache_control.public = True
    response.cache_control.immutable = True
    return response
