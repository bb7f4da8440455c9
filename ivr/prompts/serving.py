"""Prompts in the running app: the words of a prompt, the audio the caller hears, and its URL.

`speak(verb, key, language, **values)` appends `<Play>` or `<Say>` and never waits for a voice
(a render costs 100-300 ms, and on SQLite a webhook may hold the database's write turn):
- the audio is on disk → `<Play>` of its file;
- it is not, but the voice can render it → the render starts in the background and `<Play>` gets
  a *render-on-fetch* URL: the file's URL plus a signed `say=` token (ivr.prompts.signed). By the
  time Twilio fetches it the render is usually done; otherwise the fetch waits for it, at most
  IVR_TTS_FETCH_WAIT_MS;
- rendering is off or impossible for that voice, it failed a moment ago, or there is no way to
  make an absolute URL → `<Say language=…>`. The caller always hears something.

GET /prompts/audio/<name>.wav serves the files Twilio fetches. Names are content hashes (see
ivr.prompts.cache), so a file never changes: it is served as immutable with an ETag. Only names
matching the hash pattern are looked up, which rules out path traversal. No Twilio signature
check: Twilio sends none of its webhook parameters when it fetches a <Play> URL, and a file is
public words; rendering new words needs our own signature instead. Twilio accepts audio/wav
for <Play> and obeys standard HTTP caching headers (twilio.com/docs/voice/twiml/play).
"""
from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Flask, Response, abort, current_app, has_request_context, request, send_file, url_for
from flask.typing import ResponseReturnValue

from ivr import metrics
from ivr.prompts import signed
from ivr.prompts.cache import NAME_PATTERN, PromptAudio, audio_store
from ivr.prompts.catalogue import Catalogue, CatalogueSource, Prompt, PromptError, fill
from ivr.secret import secret_key
from ivr.speech.audio import Audio, wav_bytes

log = logging.getLogger(__name__)
EXTENSION = "ivr.prompts"
AUDIO_EXTENSION = "ivr.prompt_audio"
PATHS_EXTENSION = "ivr.prompt_audio_paths"
SIGNER_EXTENSION = "ivr.prompt_audio_signer"
MAX_REMEMBERED_PATHS = 4096
#: What a fetch answers when its render failed or is late: a valid WAV lets Twilio go on to the
#: listening step. A <Play> Twilio cannot fetch is an error (11200 in its debugger; callers have
#: reported hearing "an application error has occurred"). 0.3 s of μ-law silence, made once.
SILENCE = wav_bytes(Audio(bytes(2 * 2400), 8000), ulaw=True)

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
    # Every worker reads the same key (ivr/secret.py): a URL one worker signs, the other serves.
    app.extensions[SIGNER_EXTENSION] = signed.signer(secret_key(app))
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


def speak(verb: Any, key: str, language: str, **values: Any) -> str | None:
    """Append prompt `key` to a TwiML verb (VoiceResponse, Gather …) as <Play> or <Say>.

    Returns the cache name of the file played when it was on disk, else None (a render-on-fetch
    <Play> or a <Say>): what a caller of the same TwiML later can check is still so
    (`PromptAudio.on_disk`). Raises PromptError for a missing key or value (a bug in the flow);
    never raises because audio could not be rendered — that falls back to <Say>. Never waits
    for a render.
    """
    entry = prompt(key, language)
    words = fill(entry, values)
    found = _audio_url(words, entry.voice)
    if found is None:
        metrics.SAY_FALLBACKS.inc()
        say(verb, words, entry.voice)
        return None
    url, on_disk_name = found
    verb.play(url)
    return on_disk_name


def audio_url(words: str, voice_language: str) -> str | None:
    """Absolute URL of `words` in `voice_language`'s voice: the file's when it is on disk, else a
    render-on-fetch URL (its render started now); None when there is no audio and none can be
    made, or no way to make an absolute URL. Never waits for a render."""
    found = _audio_url(words, voice_language)
    return found[0] if found is not None else None


def _audio_url(words: str, voice_language: str) -> tuple[str, str | None] | None:
    """`audio_url` and the file's cache name when it is on disk (None for a render-on-fetch URL)."""
    ready = _ready(words, voice_language)
    if ready is None:
        return None
    name, on_disk = ready
    public = str(current_app.config.get("IVR_PUBLIC_URL") or "").rstrip("/")
    if public:
        url = public + _audio_path(name)
    elif has_request_context():
        url = url_for("prompt_audio.audio", name=name, _external=True)
    else:
        log.warning("IVR_PUBLIC_URL is not set and there is no request; using <Say>")
        return None
    if on_disk:
        return url, name
    # The token is URL-safe (base64 and dots), so it is appended as it is.
    order = signed.Order(name, words, voice_language)
    return f"{url}?{signed.QUERY}={signed.token(current_app.extensions[SIGNER_EXTENSION], order)}", None


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
    """Raw 8 kHz μ-law samples of a prompt for Media Streams when its audio is on disk, else None
    (then silence: the TwiML asked for it only when `has_audio` said it was there)."""
    entry = prompt(key, language)
    ready = _ready(fill(entry, values), entry.voice)
    if ready is None or not ready[1]:
        return None
    try:
        return prompt_audio().ulaw(ready[0])
    except (OSError, ValueError) as exc:  # AudioError is a ValueError
        log.warning("prompt audio %s unreadable (%s)", ready[0], exc)
        return None


def has_audio(key: str, language: str, **values: Any) -> bool:
    """True when the prompt's audio is on disk; otherwise starts its render and answers False
    at once.

    Media Streams play prompts themselves (so callers can barge in); the TwiML asks them to
    only when this holds, and otherwise plays the prompt before the stream opens (a
    render-on-fetch <Play>): the next caller who hears it can barge in.
    """
    return audio_on_disk(key, language, **values) is not None


def audio_on_disk(key: str, language: str, **values: Any) -> str | None:
    """`has_audio`, answering the file's cache name (None when it is not on disk)."""
    entry = prompt(key, language)
    ready = _ready(fill(entry, values), entry.voice)
    return ready[0] if ready is not None and ready[1] else None


def still_on_disk(names: Any) -> bool:
    """Whether every cache name in `names` still has its file (see `PromptAudio.on_disk`)."""
    store = prompt_audio()
    return all(store.on_disk(name) for name in names)


def _ready(words: str, voice_language: str) -> tuple[str, bool] | None:
    """(cache name, on disk) of the words, starting their render when they are not; None when they
    cannot be rendered. Never waits, and never raises for a voice's problem."""
    try:
        return prompt_audio().ready_or_start(words, voice_language)
    except (KeyError, ValueError, OSError, RuntimeError) as exc:  # a misconfigured voice must not cost the call
        log.warning("no audio for a %s prompt (%s); using <Say>", voice_language, exc)
        return None


@bp.get("/prompts/audio/<string:name>.wav")
def audio(name: str) -> ResponseReturnValue:
    """The WAV file of a rendered prompt (audio/wav, cacheable). Not rendered yet: with a valid
    `say=` token for this name, rendered now (or the running render joined), else 404."""
    if not NAME_PATTERN.fullmatch(name):
        abort(404)
    store = prompt_audio()
    if not store.path(name).is_file():
        order = signed.verified(current_app.extensions[SIGNER_EXTENSION], request.args.get(signed.QUERY, ""))
        if order is None or order.name != name:   # not ours, or ours for other words: nothing is rendered
            metrics.PROMPT_FETCH_RENDERS.labels(result="refused").inc()
            abort(404)
        name = _render_on_fetch(store, order)
        if name is None:
            return _silence()
    response = send_file(store.path(name), mimetype="audio/wav", conditional=True, etag=name, max_age=MAX_AGE_S)
    # The name is a hash of the content, so it is the strongest possible ETag.
    response.cache_control.public = True
    response.cache_control.immutable = True
    return response


def _render_on_fetch(store: PromptAudio, order: signed.Order) -> str | None:
    """The cache name of the order's words once rendered (waiting at most IVR_TTS_FETCH_WAIT_MS),
    or None. A name that moved since the URL was made (an admin edited the pronunciations in
    between) is served under its new name: the words are still the ones our signature vouches for."""
    wait_s = int(current_app.config.get("IVR_TTS_FETCH_WAIT_MS", 4000)) / 1000
    try:
        name = store.wait_for(order.words, order.voice, wait_s)
    except (KeyError, ValueError, OSError, RuntimeError) as exc:   # the voice is gone from the catalogue
        log.warning("prompt %s: no voice to render it at its fetch (%s)", order.name, exc)
        name = None
    if name is None:
        log.warning("prompt %s fetched but not rendered (failed, cooling down or late): silence instead", order.name)
    metrics.PROMPT_FETCH_RENDERS.labels(result="served" if name else "silence").inc()
    return name


def _silence() -> Response:
    """A short silence instead of the prompt (see SILENCE). Never cached: the next fetch of the
    URL may find the prompt rendered, and Twilio's caching proxy must not keep the silence."""
    response = Response(SILENCE, mimetype="audio/wav")
    response.cache_control.no_store = True
    return response
