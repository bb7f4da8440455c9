"""The caller's audio in over Twilio Media Streams: `/voice/stream`.

Public surface: `init_app(app)`, and for the recording path (`ivr.web.voice.recording`), which
hears a whole recorded answer with the same engines: `open_recognizer`, `step_grammar`,
`watched_emergency`. Inside:

- `routes.py`   the websocket route and its signed-upgrade check;
- `session.py`  one turn on a stream: prompt out, audio and keys in, barge-in, the turn parked;
- `listen.py`   the recogniser in the shared decode pool: as audio arrives (engines with
                partials) or once per utterance at the caller's pause (Whisper).
"""
from __future__ import annotations

from flask import Flask

from ivr.web.media.listen import open_recognizer, step_grammar, watched_emergency
from ivr.web.media.routes import bp, sock

__all__ = ["init_app", "open_recognizer", "step_grammar", "watched_emergency"]


def init_app(app: Flask) -> None:
    """Register `/voice/stream` (a websocket)."""
    sock.init_app(app)
    app.register_blueprint(bp)
