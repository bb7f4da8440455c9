"""`/voice/stream`: one caller turn over Twilio Media Streams (websocket, via flask-sock).

A listening step answers `<Connect action="/voice/turn?…"><Stream url="wss://…/voice/stream">`
with `<Parameter>`s `step`, `n`, `language` and, for barge-in, the prompt to stream: `prompt`
(a key) with `values` (JSON object), or `prompts` (JSON list of `[key, values]`). Without them
the TwiML has already played the prompt and we only listen. Here we:

1. refuse an unsigned upgrade before accepting it (403, same check as every webhook);
2. stream the prompt's μ-law audio to the caller, followed by a `mark`;
3. recognise the caller's audio in the shared decode pool (`ivr.speech.pool`) so this loop never
   blocks: as it arrives for engines with partials, once per utterance at the caller's pause for
   those without (Whisper); `clear` the prompt the moment the caller talks (barge-in);
4. end the turn on a keypad digit, on the endpointer's verdict (`ivr.speech.endpointing`),
   on silence, or when the socket drops; store it with `put_pending_turn`; close the socket.

Closing makes Twilio fetch the `<Connect action>` URL, where `/voice/turn` takes the pending turn
and renders the next step through the same decision code as every other step. A dropped socket
still stores what was heard, and a silent caller stores an empty turn (no input).
"""
from __future__ import annotations

import logging
import re
import traceback
from typing import Any, Callable

from flask import Blueprint, abort, current_app, request
from flask_sock import Sock
from simple_websocket import ConnectionClosed
from twilio.request_validator import RequestValidator

from ivr import metrics
from ivr.rules_source import current_classifier, current_rules
from ivr.speech.endpointing import EndpointConfig
from ivr.telephony.security import public_url
from ivr.web.media.session import StreamTurn

log = logging.getLogger(__name__)

bp = Blueprint("media", __name__)
sock = Sock()

STREAM_PATH = "/voice/stream"


@bp.before_request
def _refuse_unsigned_upgrade() -> Any:
    """403 before the handshake unless Twilio signed the upgrade.

    Twilio signs the `<Stream url>` it connected to, i.e. the public URL with a ws(s) scheme and
    no parameters; the rest (token, public URL, forwarded headers) is the webhooks' own rule.
    """
    token = current_app.config.get("TWILIO_AUTH_TOKEN") or ""
    signature = request.headers.get("X-Twilio-Signature", "")
    url = re.sub(r"^http", "ws", public_url(request))
    if not (token and signature and RequestValidator(token).validate(url, {}, signature)):
        log.warning("refused media stream upgrade: %s", "unsigned" if not signature else "bad signature")
        abort(403)
    return None


@sock.route(STREAM_PATH, bp=bp)
def voice_stream(ws: Any) -> None:
    """The websocket Twilio opens for `<Connect><Stream>`; runs one caller turn."""
    try:
        with metrics.ACTIVE_STREAMS.track_inprogress():
            StreamTurn(ws, endpoint_config(current_app.config), confident_check(),
                       decode_wait(current_app.config)).run()
    except ConnectionClosed:
        raise             # flask-sock's own ending: Twilio hung up, the session stored the turn
    except Exception as exc:  # noqa: BLE001 - any fault must still close the stream so the call moves on
        # Closing makes Twilio fetch the <Connect action>; with no parked turn that step
        # treats the turn as no input (reprompt or menu) instead of leaving the caller in silence.
        # First line only: database errors append SQL parameters on later lines.
        log.error("media stream failed, closing it so the call continues: %s: %s\n%s",
                  type(exc).__name__, (str(exc).splitlines() or [""])[0][:300],
                  "".join(traceback.format_tb(exc.__traceback__)))
        try:
            ws.close()
        except ConnectionClosed:
            pass


def endpoint_config(config: Any) -> EndpointConfig:
    """Endpointing settings; IVR_ENDPOINT_<FIELD>_MS (e.g. IVR_ENDPOINT_NO_INPUT_MS) override."""
    overrides = {}
    for name in EndpointConfig.__dataclass_fields__:
        raw = config.get(f"IVR_ENDPOINT_{name.upper()}")
        if raw not in (None, ""):
            overrides[name] = type(getattr(EndpointConfig, name))(raw)
    return EndpointConfig(**overrides)


def decode_wait(config: Any) -> float | None:
    """IVR_DECODE_WAIT_MS: how long a finished turn waits for its transcript (None: the default)."""
    raw = config.get("IVR_DECODE_WAIT_MS")
    try:
        return int(raw) / 1000 if raw not in (None, "") and int(raw) > 0 else None
    except (TypeError, ValueError):
        log.error("IVR_DECODE_WAIT_MS=%r is not a whole number of milliseconds; using the default", raw)
        return None


def confident_check() -> Callable[[str, str], str | None]:
    """text, language → where that text already routes confidently ("emergency", a department)
    or None. The early endpoint only fires while this answer holds still."""
    classifier, threshold = current_classifier(), current_rules().thresholds.route

    def destination(text: str, language: str) -> str | None:
        result = classifier.classify(text, language)
        if result.emergency:
            return "emergency"
        top = result.top
        return (top.department or top.intent or "?") if top and top.confidence >= threshold else None

    return destination
