"""The cache of rendered prompts: `<sha256[:32]>.wav` in IVR_PROMPT_CACHE_DIR.

Files are named by `Speaker.key`: a hash of what is said and how (words after the lexicon
and style, engine, voice, rate), so a changed prompt, pronunciation or voice gets a new file
and an unchanged one is never rendered twice. Renders run on a small thread pool. A webhook
never waits for one (`ready_or_start`): it starts the render and hands Twilio a URL that
waits for it (`wait_for`, at fetch time). A language without a rendering engine is always <Say>.
"""
from __future__ import annotations

import fcntl
import logging
import os
import re
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from ivr import metrics
from ivr.voices import Lexicon, Speaker, TTSError, speakers_for, ulaw_payload

log = logging.getLogger(__name__)

#: What a cache file name looks like; anything else is refused (no path traversal).
NAME_PATTERN = re.compile(r"^[0-9a-f]{32}$")
#: After a failed render, do not retry the same text for this long: meanwhile webhooks say it
#: with <Say> and a fetch of its URL gets silence at once (a broken engine would otherwise be
#: asked again by every call, and every fetch would wait for it).
RETRY_AFTER_S = 60.0
#: A file seen on disk is trusted this long without another stat (nothing here deletes cache
#: files; an admin who empties the folder by hand sees <Say>/re-renders within this time).
SEEN_FOR_S = 30.0

class PromptAudio:
    """Rendered prompt files of one app: lookup, background render, blocking render."""

    def __init__(self, cache_dir: str | Path, speakers: Mapping[str, Speaker],
                 unavailable: str | None = None, workers: int = 2) -> None:
        self.cache_dir = Path(cache_dir)
        self.speakers = dict(speakers)
        #: Why nothing can be rendered at all (IVR_TTS=off); None when some language renders.
        self.unavailable = unavailable
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ivr-tts")
        self._lock = threading.Lock()
        self._inflight: dict[str, Future[str]] = {}
        self._failed: dict[str, float] = {}   # name → when its render failed
        self._voice_failed: dict[str, float] = {}   # language → its last render failed then (none since)
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

    def render(self, text: str, language: str) -> str:
        """Render now (blocking) unless cached; returns the cache name. Raises TTSError."""
        name = self.name(text, language)
        target = self.path(name)
        if target.is_file():
            return name
        if self.unavailable:
            raise TTSError(self.unavailable)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        # The other gunicorn worker may be rendering the same new words (a webhook's background
        # render there, Twilio's fetch here): wait for its file rather than render it twice.
        with _render_lock(self.cache_dir, name):
            if target.is_file():
                return name
            audio = self.speaker(language).render(text)
            # Write then rename: other workers never see a half-written file.
            handle, temporary = tempfile.mkstemp(dir=self.cache_dir, suffix=".part")
            with os.fdopen(handle, "wb") as out:
                out.write(audio)
            os.replace(temporary, target)
        return name

    def ready_or_start(self, text: str, language: str) -> tuple[str, bool] | None:
        """Never blocks (webhooks call it). (name, True): the file is on disk. (name, False): its
        render is running now in the background (started here, or already in flight). None: it
        cannot be rendered — rendering is off, the language has no engine, or a recent render of
        these words failed — so the caller must hear <Say>."""
        name = self.name(text, language)
        if self.on_disk(name):
            return name, True
        if self.unavailable or self.speaker(language).engine is None or self._voice_failing(language):
            return None
        return (name, False) if self._submit(name, text, language) is not None else None

    def _voice_failing(self, language: str) -> bool:
        """The voice's last render failed less than RETRY_AFTER_S ago. New words then get <Say>:
        with a broken engine, a render-on-fetch URL would only give every caller silence."""
        failed_at = self._voice_failed.get(language)
        return failed_at is not None and time.monotonic() - failed_at < RETRY_AFTER_S

    def wait_for(self, text: str, language: str, timeout_s: float) -> str | None:
        """The cache name once `text` is rendered: joins this process's render of it or starts
        one, and waits at most `timeout_s` (a fetch of a render-on-fetch URL). None when it
        cannot be rendered, failed, or is late (a late render goes on: the next call plays it)."""
        name = self.name(text, language)
        if self.on_disk(name):
            return name
        if self.unavailable or self.speaker(language).engine is None:
            return None
        future = self._submit(name, text, language)
        if future is None:
            return None
        try:
            return future.result(timeout=max(timeout_s, 0.0))
        except FutureTimeout:
            log.info("prompt %s not rendered within %.0f ms of its fetch; it goes on", name, timeout_s * 1000)
        except (TTSError, OSError, ValueError, KeyError):
            pass   # logged and counted by _finished
        return None

    def on_disk(self, name: str) -> bool:
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
        future.add_done_callback(lambda done: self._finished(name, language, done))
        return future

    def _finished(self, name: str, language: str, future: Future[str]) -> None:
        error = future.exception()
        with self._lock:
            self._inflight.pop(name, None)
            if error is not None:
                self._failed[name] = self._voice_failed[language] = time.monotonic()
            else:
                self._failed.pop(name, None)
                self._voice_failed.pop(language, None)
        if error is not None:   # logged here: no webhook waits for a render to see it fail
            log.warning("prompt %s could not be rendered (%s); <Say> for the next %.0f s", name, error, RETRY_AFTER_S)
        metrics.TTS_RENDERS.labels(result="failed" if error is not None else "ok").inc()

    def warm_up(self) -> None:
        """Load every language's voice in the background (a Piper model takes a second or two) and
        synthesise the digits numbers are read with, so the first caller's render-on-fetch prompt
        (a case number read back) waits for neither."""
        if self.unavailable:
            return
        for speaker in self.speakers.values():
            if speaker.engine is not None:
                self._pool.submit(_quietly, speaker.warm)

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


@contextmanager
def _render_lock(cache_dir: Path, name: str) -> Iterator[None]:
    """An exclusive `flock` shared by every process on this cache, one per first two hex digits of
    the name: at most 256 small files, and two different words rarely share one (then one render
    waits for the other, which is harmless). In the app only the render pool's threads wait for it:
    a fetch waits for the render's future, with a limit."""
    folder = cache_dir / ".locks"
    folder.mkdir(exist_ok=True)
    with open(folder / f"{name[:2]}.lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)   # released when the file is closed
        yield


def _quietly(warm: Callable[[], None]) -> None:
    try:
        warm()
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
