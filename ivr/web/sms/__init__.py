"""The SMS channel: Twilio's Messaging webhook `POST /sms/incoming`.

- `webhook`: the view (signed, retry-safe, never a 5xx): text in → conversation → effects → <Message>.
The conversation itself is pure (`ivr.routing.sms_dialogue`); the words are prompts/sms/<lang>.yaml.
"""
from __future__ import annotations

from flask import Flask

from ivr.web.sms import webhook

__all__ = ["init_app"]


def init_app(app: Flask) -> None:
    """Register `/sms/incoming`."""
    app.register_blueprint(webhook.bp)
