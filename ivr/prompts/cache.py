"""The cache of rendered prompts: `<sha256[:32]>.wav` in IVR_PROMPT_CACHE_DIR.

Files are named by `Speaker.key`: a hash of what is said and how (words after the lexicon
and style, engine, voice, rate), so a changed prompt, pronunciation or voice gets a new file
and an unchanged one is never rendered twice. Renders run on a small thread pool: a webhook
waits at most its budget, and a render that misses it keeps going so the next caller gets
<Play>. A language without a rendering engine is always <Say>.
"""
from __future__ import annotations

import logging
import os
import re
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any, Callable, Mapping

from ivr import metrics
from ivr.voices import Lexicon, Speaker, TTSError, speakers_for, ulaw_payload

log = logging.getLogger(__name__)

#: What a cache file name looks like; anything else is refused (no path traversal).
NAME_PATTERN = re.compile(r"^[0-9a-f]{32}$")
#: After a failed render, do not retry the same text for this long (a broken engine would
#: otherwise cost every webhook its whole budget).
RETRY_AFTER_S = 60.0
#: A file seen on disk is trusted this long without another stat (nothing here deletes cache
#: files; an admin who empties the folder by hand sees <Say>/re-renders within this time).
SEEN_FOR_S = 30.0

class PromptAudio:
    """Rendered prompt files of one app: lookup, blocking render, render within a budget."""

    def __init__(self, cache_dir: str | Path, speakers: Mapping[str, Speaker],
                 unavailable: str | None = None, workers: int = 2) -> None:
        self.cache_dir = Path(cache_dir)
        self.speakers = dict(speakers)
        #: Why nothing can be rendered at all (IVR_TTS=off); None when some language renders.
        self.unavailable = unavailable
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ivr-tts")
        self._lock = threading.Lock()
        self._inflight: dict[str, Future[str]] = {}
        self._failed: dict[str, float] = {}
        self._seen: dict[str, float] = {}     # name → when its file was last seen on disk

    def speaker(self, language: str) -> Speaker:
        """The voice of `language` (KeyError when the line has no such language)."""
        try:
            return self.speakers[language]
        except KeyError:
            raise KeyError(f"no voice for '{language}'; it is not one of the catalogue's languages") from None

    def name(self, text: str, language: str) -> str:
        """Cache name for `text` spoken by `language`'s speaker."""
        return self.speaker(language).key(text)

    def path(self, name: str) -> Path:
        """The file of a cache name; ValueError for anything that is not a cache name."""
        if not NAME_PATTERN.fullmatch(name):
            raise ValueError(f"not a prompt audio name: {name!r}")
        return self.cache_dir / f"{name}.wav"

    def cached(self, text: str, language: str) -> str | None:
        """The cache name when `text` is already rendered, else None."""
        name = self.name(text, language)
        return name if self.path(name).is_file() else None

    def render(self, text: str, language: str) -> str:
        """Render now (blocking) unless cached; returns the cache name. Raises TTSError."""
        name = self.name(text, language)
        target = self.path(name)
        if target.is_file():
            return name
        if self.unavailable:
            raise TTSError(self.unavailable)
        audio = self.speaker(language).render(text)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        # Write then rename: other workers never see a half-written file.
        handle, temporary = tempfile.mkstemp(dir=self.cache_dir, suffix=".part")
        with os.fdopen(handle, "wb") as out:
            out.write(audio)
        os.replace(temporary, target)
        return name

    def ensure(self, text: str, language: str, budget_s: float) -> str | None:
        """The cache name if `text` is (or within `budget_s` becomes) rendered, else None.

        Never raises for rendering failures: they are logged and answered with None so
        the caller falls back to <Say>. A render that misses the budget continues.
        """
        name = self.name(text, language)
        if self._on_disk(name):
            return name
        if self.unavailable or self.speaker(language).engine is None:
            return None
        future = self._submit(name, text, language)
        if future is None:
            return None
        try:
            return future.result(timeout=max(budget_s, 0.0))
        except FutureTimeout:
            log.info("prompt %s not rendered within %.0f ms; <Say> now, <Play> next time", name, budget_s * 1000)
        except (TTSError, OSError, ValueError, KeyError) as exc:
            log.warning("prompt %s could not be rendered (%s); falling back to <Say>", name, exc)
        return None

    def _on_disk(self, name: str) -> bool:
        """Whether the file of `name` exists (a stat at most every SEEN_FOR_S per name: every
        webhook asks for one to three prompts, almost always the same few)."""
        now = time.monotonic()
        if now - self._seen.get(name, float("-inf")) < SEEN_FOR_S:
            return True
        if not self.path(name).is_file():
            return False
        if len(self._seen) >= 4096:
            self._seen.clear()
        self._seen[name] = now
        return True

    def _submit(self, name: str, text: str, language: str) -> Future[str] | None:
        """One render per name at a time; None while a recent failure is cooling down."""
        with self._lock:
            failed_at = self._failed.get(name)
            if failed_at is not None and time.monotonic() - failed_at < RETRY_AFTER_S:
                return None
            future = self._inflight.get(name)
            if future is not None:
                return future
            future = self._pool.submit(self.render, text, language)
            self._inflight[name] = future
        # Outside the lock: a future that is already done runs the callback right here.
        future.add_done_callback(lambda done: self._finished(name, done))
        return future

    def _finished(self, name: str, future: Future[str]) -> None:
        with self._lock:
            self._inflight.pop(name, None)
            if future.exception() is not None:
                self._failed[name] = time.monotonic()
            else:
                self._failed.pop(name, None)
        metrics.TTS_RENDERS.labels(result="failed" if future.exception() is not None else "ok").inc()

    def warm_up(self) -> None:
        """Load every language's voice in the background (a Piper model takes a second or two), so
        the first caller's on-demand prompt does not pay for it inside its budget."""
        if self.unavailable:
            return
        for speaker in self.speakers.values():
            load = getattr(speaker.engine, "load", None)
            if load is not None:
                self._pool.submit(_quietly, load)

    def wait_idle(self, timeout_s: float = 30.0) -> None:
        """Block until background renders finish (tests, `ivr prompts build`)."""
        with self._lock:
            pending = list(self._inflight.values())
        for future in pending:
            try:
                future.result(timeout=timeout_s)
            except (FutureTimeout, TTSError, OSError, ValueError, KeyError):
                pass  # already recorded by _finished; here we only wait

    def ulaw(self, name: str) -> bytes:
        """Raw 8 kHz μ-law samples of a cached file (for Media Streams)."""
        return ulaw_payload(self.path(name).read_bytes())


def _quietly(load: Callable[[], None]) -> None:
    try:
        load()
    except (TTSError, OSError, RuntimeError, ValueError) as exc:   # the first render will say why
        log.warning("could not load a voice ahead of time: %s", exc)


def audio_store(config: Mapping[str, Any], languages: list[str],
                lexicons: Callable[[str], Lexicon] | None = None) -> PromptAudio:
    """The rendered-audio cache of IVR_PROMPT_CACHE_DIR with a speaker per language (see
    ivr.voices.speaker for IVR_TTS_ENGINE_<LANG> and the voice settings).

    IVR_TTS=off disables rendering (every prompt is <Say>), e.g. for tests of the call flow.
    """
    disabled = str(config.get("IVR_TTS", "")).lower() in {"off", "none", "0", "false", "say"}
    return PromptAudio(config["IVR_PROMPT_CACHE_DIR"], speakers_for(config, languages, lexicons),
                       unavailable="rendering is off (IVR_TTS=off)" if disabled else None)
