"""Settings from the environment (IVR_* and TWILIO_AUTH_TOKEN), read only inside create_app."""
from __future__ import annotations

import os
import site
import sys
import sysconfig
from pathlib import Path
from typing import Any, Mapping

PROJECT_ROOT = Path(__file__).resolve().parent.parent
#: Where an installed wheel puts the shipped rules, prompts and grammars (pyproject's data-files).
SHARE = Path("share") / "city-ivr"


def shipped(name: str) -> Path:
    """A file or folder the project ships: the checkout's (source or editable install), else the
    copy a wheel installed under <prefix>/share/city-ivr (plain `pip install city-ivr`)."""
    here = PROJECT_ROOT / name
    if here.exists():
        return here
    for base in (sysconfig.get_path("data"), sys.prefix, site.getuserbase()):
        candidate = Path(base) / SHARE / name
        if candidate.exists():
            return candidate
    return here



# name → (default, parser). Defaults are the embedded set-up: SQLite, shipped rules, auto engine.
_SETTINGS: dict[str, tuple[Any, type]] = {
    "DATABASE_URL": ("", str),                 # "" → sqlite:///<instance>/ivr.sqlite3
    "RULES_PATH": (str(shipped("routing_rules.yaml")), str),
    "PROMPTS_DIR": (str(shipped("prompts")), str),
    "GRAMMARS_DIR": (str(shipped("grammars")), str),
    "MODELS_DIR": (str(PROJECT_ROOT / "models"), str),
    "PROMPT_CACHE_DIR": ("", str),             # "" → <instance>/prompt-cache
    "PUBLIC_URL": ("", str),                   # https://ivr.example.gov — what Twilio calls
    "TRUST_FORWARDED": (False, bool),          # honour X-Forwarded-* only behind a known proxy
    "API_TOKEN": ("", str),                    # bearer token for /api/*
    "SPEECH_ENGINE": ("auto", str),            # auto | vosk | whisper | pocketsphinx | twilio | keypad
    "CAPTURE": ("stream", str),                # stream (Media Streams) | record | twilio
    "TTS_RATE": (150, int),                    # words per minute for rendered prompts
    "TTS_FETCH_WAIT_MS": (4000, int),          # how long Twilio's fetch of a prompt waits for its render (webhooks never wait)
    "RULES_RELOAD": (True, bool),              # re-read routing_rules.yaml when it changes
    "REDIS_URL": ("", str),                    # job queue on Redis; "" → SQLite <instance>/jobs.sqlite3
    "JOBS_DB": ("", str),                      # the SQLite job queue's file (default in the instance folder)
    "JOBS_IMMEDIATE": (False, bool),           # run jobs inline when enqueued (tests, scripts)
    "METRICS_TOKEN": ("", str),                # bearer token for /metrics; "" → /metrics is off (404)
    "LOG_FORMAT": ("text", str),               # text | json
    "RECORDING_HOST": ("api.twilio.com", str),  # the one host recordings are fetched from (https)
    "GIL_SWITCH_MS": (0.5, float),             # served by ivr.wsgi: how long a thread keeps the GIL (see there)
    "ACTIVE_WEBHOOKS": (0, int),               # webhooks a process runs at once, the rest wait (ivr.web.admission); 0 = all
}


def _parse(raw: str, kind: type) -> Any:
    if kind is bool:
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    return kind(raw)


def from_environment(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Flask config keys (IVR_…) from the environment, falling back to defaults.

    Per-language settings (IVR_SPEECH_ENGINE_ES, IVR_VOSK_MODEL_EN, IVR_TTS_VOICE_ES …)
    are passed through as they are.
    """
    environ = os.environ if environ is None else environ
    config: dict[str, Any] = {}
    for name, (default, kind) in _SETTINGS.items():
        raw = environ.get(f"IVR_{name}")
        config[f"IVR_{name}"] = default if raw in (None, "") else _parse(raw, kind)
    for key, value in environ.items():
        if key.startswith("IVR_") and key not in config:
            config[key] = value
    config["TWILIO_AUTH_TOKEN"] = environ.get("TWILIO_AUTH_TOKEN", "")
    config["TWILIO_ACCOUNT_SID"] = environ.get("TWILIO_ACCOUNT_SID", "")
    return config
