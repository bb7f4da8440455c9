"""Which recogniser serves each language, loaded once per process and shared by every call.

`auto` picks the best engine this machine has: Vosk when a model for the language exists, else
Whisper when a model serves it (the install carries tiny.en for English and multilingual base),
else the embedded pocketsphinx engine for English, else Twilio's own recognition (inside
`<Gather>`), else keypad only. The README's "Speech engines" section has the measurements behind
that order. `IVR_SPEECH_ENGINE` / `IVR_SPEECH_ENGINE_<LANG>` force a choice; a forced
engine that cannot work stops start-up with a message saying how to fix it.

Choosing is cheap (a directory lookup) and happens in `init_app`; loading a model is slow and
happens on first use (or in the background at start-up outside tests), so tests stay fast.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Callable, Mapping

from flask import Flask, current_app

from ivr.routing.rules import Rules
from ivr.speech.engines.base import Engine, EngineUnavailable
from ivr.config import shipped
from ivr.speech.engines import pocketsphinx, vosk, whisper
from ivr.speech.engines.pocketsphinx import DEFAULT_MAX_DECODERS
from ivr.lang import dirs_beside
from ivr.speech.engines.twilio import TwilioEngine, twilio_locale

log = logging.getLogger(__name__)

ENGINES = ("auto", "vosk", "whisper", "pocketsphinx", "twilio", "keypad")
LOCAL_ENGINES = ("vosk", "whisper", "pocketsphinx")
#: Engines whose loaded form depends on the routing rules (a domain model, a prompt): rebuilt
#: when the rules reload.
RULES_ENGINES = ("whisper", "pocketsphinx")
_EXTENSION = "ivr.speech"


class SpeechService:
    """Engine choice and loaded engines per language. Thread-safe; one per app (process)."""

    def __init__(self, config: Mapping[str, Any], rules: Callable[[], Rules | None], cache_dir: str | Path) -> None:
        self.config = config
        self._rules = rules
        self.cache_dir = Path(cache_dir)
        self._choice: dict[str, str] = {}
        self._engines: dict[str, tuple[int, Engine]] = {}
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}
        #: Where an admin's own language files are (their locales say what Twilio hears).
        self.lang_dirs = dirs_beside(config.get("IVR_RULES_PATH"))

    def setting(self, language: str) -> str:
        """The configured engine for `language` (per-language key first), validated."""
        value = str(self.config.get(f"IVR_SPEECH_ENGINE_{language.upper()}")
                    or self.config.get("IVR_SPEECH_ENGINE") or "auto").strip().lower()
        if value not in ENGINES:
            raise EngineUnavailable(f"IVR_SPEECH_ENGINE{'_' + language.upper()}={value!r} is not one of "
                                    f"{', '.join(ENGINES)}")
        return value

    def choose(self, language: str) -> str:
        """The engine name serving `language`: vosk | whisper | pocketsphinx | twilio | keypad."""
        with self._lock:
            if language not in self._choice:
                self._choice[language] = self._resolve(language)
            return self._choice[language]

    def _resolve(self, language: str) -> str:
        wanted = self.setting(language)
        if wanted == "vosk":
            if vosk.find_model(language, self.config) is None:
                raise EngineUnavailable(vosk.missing_model_message(language))
            return "vosk"
        if wanted == "whisper":
            if not whisper.whisper_installed():
                raise EngineUnavailable("faster-whisper is not installed: pip install faster-whisper")
            if whisper.find_model(language, self.config) is None:
                raise EngineUnavailable(whisper.missing_model_message(language))
            return "whisper"
        if wanted == "pocketsphinx":
            if language != "en":
                raise EngineUnavailable(f"the embedded engine (pocketsphinx) only has English; for "
                                        f"{language!r} use vosk, twilio or auto")
            return "pocketsphinx"
        if wanted == "twilio":
            if not twilio_locale(language, self.lang_dirs):
                raise EngineUnavailable(f"Twilio speech has no locale configured for {language!r} "
                                        f"(`gather:` in the locales of {language}.yaml)")
            return "twilio"
        if wanted == "keypad":
            return "keypad"
        if vosk.find_model(language, self.config) is not None:
            return "vosk"
        if whisper.whisper_installed() and whisper.find_model(language, self.config) is not None:
            return "whisper"
        if language == "en" and _pocketsphinx_installed():
            return "pocketsphinx"
        return "twilio" if twilio_locale(language, self.lang_dirs) else "keypad"

    def engine_for(self, language: str) -> Engine | None:
        """The loaded engine for `language` (None: keypad only). Loads it on first use.

        The embedded engine's language model and Whisper's prompt come from the routing rules, so
        they are rebuilt (pocketsphinx's from its on-disk cache when the rules are unchanged;
        Whisper's model itself stays loaded) after the rules reload.
        """
        name = self.choose(language)
        if name == "keypad":
            return None
        rules = self._rules() if name in RULES_ENGINES else None
        key = id(rules)
        with self._lock:
            loading = self._loading.setdefault(language, threading.Lock())
        # One load per language at a time: the first calls after start-up (and the warm-up)
        # would otherwise each load the model, seconds of CPU and a model's memory apiece.
        with loading:
            with self._lock:
                loaded = self._engines.get(language)
                if loaded is not None and (name not in RULES_ENGINES or loaded[0] == key):
                    return loaded[1]
            engine = self._load(name, language, rules)
            with self._lock:
                self._engines[language] = (key, engine)
        log.info("speech: %s engine ready for %s", name, language)
        return engine

    def ready(self, language: str) -> bool:
        """True when `language` can be recognised now without loading anything (for /readyz)."""
        return self.choose(language) in ("twilio", "keypad") or language in self._engines

    def _load(self, name: str, language: str, rules: Rules | None) -> Engine:
        if name == "twilio":
            return TwilioEngine(language, self.lang_dirs)
        if name == "vosk":
            return vosk.VoskEngine(language, vosk.find_model(language, self.config))
        if name == "whisper":
            return whisper.WhisperEngine(language, whisper.find_model(language, self.config), rules=rules,
                                         threads=self._int_setting("IVR_WHISPER_THREADS", 0) or None,
                                         workers=self._int_setting("IVR_WHISPER_WORKERS", 0) or None)
        return pocketsphinx.PocketsphinxEngine(rules, language, cache_dir=self.cache_dir,
                                               extra_sentences=self._extra_sentences(language),
                                               max_decoders=self._int_setting("IVR_DECODE_POOL_MAX",
                                                                              DEFAULT_MAX_DECODERS),
                                               emergency_watch=_flag(self.config.get("IVR_EMERGENCY_WATCH", True)))

    def _int_setting(self, key: str, default: int) -> int:
        raw = self.config.get(key)
        if raw in (None, ""):
            return default
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise EngineUnavailable(f"{key}={raw!r} is not a whole number") from None

    def _extra_sentences(self, language: str) -> list[str]:
        # The shipped folder, not one relative to the working directory: a service started
        # elsewhere would otherwise build a different model from the app's, silently.
        grammars = self.config.get("IVR_GRAMMARS_DIR") or shipped("grammars")
        path = Path(grammars) / language / "lm_extra.txt"
        if not path.exists():
            return []
        lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
        return [line for line in lines if line]

    def capture_mode(self, language: str) -> str:
        """How a listening step captures speech: "stream" | "record" | "twilio" | "keypad"."""
        name = self.choose(language)
        if name in ("twilio", "keypad"):
            return name
        capture = str(self.config.get("IVR_CAPTURE") or "stream")
        return capture if capture in ("stream", "record", "twilio") else "stream"

    def warm(self, languages: tuple[str, ...]) -> None:
        """Load the local engines for `languages` in a background thread, off the start-up path.

        Not in the decode pool: loading takes seconds, and with a decode thread per core (two on a
        2-core machine) the first callers' decodes would wait behind it and be asked again.
        """
        wanted = [language for language in languages if self.choose(language) in LOCAL_ENGINES]
        if wanted:
            threading.Thread(target=lambda: [self._warm_one(language) for language in wanted],
                             name="ivr-speech-warm", daemon=True).start()

    def _warm_one(self, language: str) -> None:
        try:
            engine = self.engine_for(language)
            if hasattr(engine, "warm"):
                engine.warm()
        except EngineUnavailable as exc:
            log.error("speech: %s engine for %s failed to load: %s", self.choose(language), language, exc)


def _flag(value: Any) -> bool:
    """A yes/no setting that may come as a bool or as environment text ("0", "false", "off")."""
    return value if isinstance(value, bool) else str(value).strip().lower() not in {"0", "false", "no", "off", ""}


def _pocketsphinx_installed() -> bool:
    try:
        import pocketsphinx  # noqa: F401  (only asking whether it is importable)
    except ImportError:
        return False
    return True


def _app_rules(app: Flask) -> Callable[[], Rules | None]:
    def current() -> Rules | None:
        # ivr.rules_source keeps a RulesSource whose rules() also notices a changed file.
        holder = app.extensions.get("ivr.rules")
        rules = getattr(holder, "rules", None)
        return rules() if callable(rules) else None
    return current


def init_app(app: Flask) -> None:
    """Choose an engine per rules language now (a forced engine that cannot work refuses to start)."""
    rules = _app_rules(app)
    cache_dir = Path(app.instance_path) / "speech-cache"
    service = SpeechService(app.config, rules, cache_dir)
    app.extensions[_EXTENSION] = service
    current = rules()
    languages = current.languages if current else ("en",)
    for language in languages:
        try:
            log.info("speech: %s uses %s (capture %s)", language, service.choose(language),
                     service.capture_mode(language))
        except EngineUnavailable as exc:
            raise RuntimeError(f"speech recognition for {language!r}: {exc}") from exc
    if not app.config.get("TESTING") and app.config.get("IVR_WARM", True):   # ivr worker: no calls here
        service.warm(languages)


def speech_service() -> SpeechService:
    """The running app's speech service (inside an app or request context)."""
    return current_app.extensions[_EXTENSION]


def engine_for(language: str) -> Engine | None:
    """Shortcut: the running app's engine for `language` (None: keypad only)."""
    return speech_service().engine_for(language)


def capture_mode(language: str) -> str:
    """Shortcut: the running app's capture mode for `language`."""
    return speech_service().capture_mode(language)
