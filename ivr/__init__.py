"""City-line IVR call router: the Flask app factory.

One call's journey: config → database → routing rules → prompts → recognisers → webhooks.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from flask import Flask


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: defaults from the environment, then `config` overrides (tests)."""
    # Every import in this function is here, not at the top: importing the pure core
    # (`ivr.routing`) loads this package, and must not load Flask, the store or any other edge
    # with it (tests/test_core_purity.py). None of them breaks a cycle.
    from flask import Flask

    app = Flask(__name__, instance_relative_config=True)
    from ivr.config import from_environment

    app.config.from_mapping(from_environment())
    if config:
        app.config.from_mapping(config)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    if not app.config["IVR_DATABASE_URL"]:
        app.config["IVR_DATABASE_URL"] = f"sqlite:///{Path(app.instance_path) / 'ivr.sqlite3'}"
    if not app.config["IVR_PROMPT_CACHE_DIR"]:
        app.config["IVR_PROMPT_CACHE_DIR"] = str(Path(app.instance_path) / "prompt-cache")
    from ivr import logs
    from ivr.web import admission

    admission.init_app(app)  # first: a webhook waiting for its turn to run does no work yet
    logs.init_app(app)      # first: every later line carries the request's CallSid and id

    from ivr.store import db
    from ivr import rules_source
    from ivr import prompts
    from ivr.speech import service as speech
    from ivr.web import api, health, media, voice
    from ivr.web import sms
    from ivr import jobs
    from ivr.web import console, open311
    from ivr.web import outbox as outbox_status
    from ivr.web import metrics as web_metrics

    db.init_app(app)
    jobs.init_app(app)
    web_metrics.init_app(app)
    rules_source.init_app(app)
    prompts.init_app(app)
    speech.init_app(app)
    for module in (health, voice, sms, api, media, console, open311, outbox_status):
        module.init_app(app)
    return app
