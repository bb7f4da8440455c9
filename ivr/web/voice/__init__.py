"""Twilio's voice webhooks: one call's steps from `/voice/incoming` to the status callback.

- `webhooks`: the views Twilio posts to (incoming, turn, dial/queue results, whisper, status …).
- `recording`: `/voice/recorded`, the recorded-answer path for hosts without websockets.
- `conversation`: parse → classify → decide → store → render, shared by every voice edge.
- `rescue`: `safe_webhook`, the answer that still reaches a person when anything fails.

Other edges use `respond_to_turn` (a caller's answer at the current step) and `safe_webhook`.
"""
from __future__ import annotations

from flask import Flask

from ivr.web.voice import recording, webhooks
from ivr.web.voice.conversation import respond_to_turn
from ivr.web.voice.rescue import safe_webhook

__all__ = ["init_app", "respond_to_turn", "safe_webhook"]


def init_app(app: Flask) -> None:
    """Register the voice webhooks and the recording path."""
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(recording.bp)
