"""`/voice/stream`: one caller turn over Twilio Media Streams (websocket, via flask-sock).

The "what are you calling about" step answers `<Connect action="/voice/turn?…"><Stream
url="wss://…/voice/stream">` with `<Parameter>`s `language`, `prompt` (a prompt key) and, when
the prompt has placeholders, `values` (a JSON object). Here we:

1. refuse an unsigned upgrade before accepting it (403, same check as every webhook);
2. stream the prompt's μ-law audio to the caller, followed by a `mark`;
3. recognise the caller's audio as it arrives, decoding in the shared decode pool so this
   loop never blocks; `clear` the prompt the moment the caller talks (barge-in);
4. end the turn on a keypad digit, on the endpointer's verdict (`ivr.speech.endpointing`),
   on silence, or when the socket drops; store it with `put_pending_turn`; close the socket.

Closing makes Twilio fetch the `<Connect action>` URL, where `/voice/turn` takes the pending turn
and renders the next step through the same decision code as every other step. A dropped socket
still stores what was heard, and a silent caller stores an empty turn (no input).
"""
from __future__ import annotations

import json
import logging
import re
import socket
import time
from typing import Any, Callable

from flask import Blueprint, Flask, abort, current_app, request
from flask_sock import Sock
from simple_websocket import ConnectionClosed

from ivr.speech.audio import ulaw_to_pcm16
from ivr.speech.engines.base import EngineUnavailable
from ivr.speech.endpointing import EndpointConfig, Endpointer, Signal
from ivr.telephony import stream as wire
from ivr.web.stream_decoder import StreamDecoder

log = logging.getLogger(__name__)

bp = Blueprint("media", __name__)
sock = Sock()

STREAM_PATH = "/voice/stream"
PROMPT_MARK = "prompt-end"
#: Twilio sends a frame every 20 ms; this long without one means the socket is as good as gone.
IDLE_TIMEOUT_S = 3.0
#: How long to wait for `connected` + `start` after the upgrade.
START_TIMEOUT_S = 5.0
#: The longest we wait for the recogniser's final result before using its last partial.
FINISH_TIMEOUT_S = 2.0


@bp.before_request
def _refuse_unsigned_upgrade() -> Any:
    """403 before the handshake unless Twilio signed the upgrade.

    Twilio signs the `<Stream url>` it connected to, i.e. the public URL with a ws(s) scheme and
    no parameters; the rest (token, public URL, forwarded headers) is the webhooks' own rule.
    """
    from twilio.request_validator import RequestValidator

    from ivr.telephony.security import public_url

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
    StreamTurn(ws, endpoint_config(current_app.config), confident_check()).run()


def endpoint_config(config: Any) -> EndpointConfig:
    """Endpointing settings; IVR_ENDPOINT_<FIELD>_MS (e.g. IVR_ENDPOINT_NO_INPUT_MS) override."""
    overrides = {}
    for name in EndpointConfig.__dataclass_fields__:
        raw = config.get(f"IVR_ENDPOINT_{name.upper()}")
        if raw not in (None, ""):
            overrides[name] = type(getattr(EndpointConfig, name))(raw)
    return EndpointConfig(**overrides)


def confident_check() -> Callable[[str, str], str | None]:
    """text, language → where that text already routes confidently ("emergency", a department)
    or None. The early endpoint only fires while this answer holds still."""
    from ivr.routing.source import current_classifier, current_rules

    classifier, threshold = current_classifier(), current_rules().thresholds.route

    def destination(text: str, language: str) -> str | None:
        result = classifier.classify(text, language)
        if result.emergency:
            return "emergency"
        top = result.top
        return (top.department or top.intent or "?") if top and top.confidence >= threshold else None

    return destination


class StreamTurn:
    """One `<Connect><Stream>` session: prompt out, audio and digits in, one turn stored."""

    def __init__(self, ws: Any, config: EndpointConfig,
                 destination: Callable[[str, str], str | None]) -> None:
        self.ws = ws
        self.endpointer = Endpointer(config)
        self.destination = destination
        self.start: wire.Start | None = None
        self.language = "en"
        self.decoder: StreamDecoder | None = None
        self.playing = False
        self.digits = ""
        self.reason = ""
        self.ended_at = 0.0
        self._last_partial: tuple[str, int] = ("", -1)
        self._destinations: dict[str, str | None] = {}

    # -- the session ------------------------------------------------------------------------
    def run(self) -> None:
        """Drive the socket until the turn ends; store the turn; close (unless Twilio did)."""
        closed_by_peer = False
        try:
            self.start = self._await_start()
            if self.start is None:
                return
            self._begin()
            self.reason = self._listen()
        except ConnectionClosed:
            self.reason, closed_by_peer = "dropped", True
        self.ended_at = time.monotonic()
        if self.start is not None:
            self._store(self._turn())
        if not closed_by_peer and self.reason not in ("stop", "dropped"):
            self._barge_in()      # stop a prompt still playing before Twilio moves on
            self._close()

    def _await_start(self) -> wire.Start | None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while (left := deadline - time.monotonic()) > 0:
            event = self._receive(left)
            if isinstance(event, wire.Start):
                return event
            if isinstance(event, wire.Stop):
                return None
        log.warning("media stream opened but no 'start' within %.0f s; closing", START_TIMEOUT_S)
        self._close()
        return None

    def _begin(self) -> None:
        from ivr.routing.source import current_rules
        from ivr.speech.service import speech_service

        assert self.start is not None
        params = self.start.custom_parameters
        rules = current_rules()
        self.language = params.get("language") if params.get("language") in rules.languages \
            else rules.default_language
        engine = None
        try:
            engine = speech_service().engine_for(self.language)
            if engine is not None:
                self.decoder = StreamDecoder(engine.recognizer(wire.SAMPLE_RATE))
        except EngineUnavailable as exc:
            # Keypad and silence still work; the caller is never stuck on a broken recogniser.
            log.error("stream %s: no recogniser for %s: %s", self.start.stream_sid, self.language, exc)
        audio = _prompt_audio(params, self.language)
        if audio:
            for frame in wire.media_messages(self.start.stream_sid, audio):
                self.ws.send(frame)
            self._send(wire.Mark(self.start.stream_sid, PROMPT_MARK))
            self.playing = True
        else:
            self.endpointer.prompt_finished()
        log.info("stream %s: call %s listening (%s, engine %s)", self.start.stream_sid,
                 self.start.call_sid, self.language, getattr(engine, "name", "?"))

    def _listen(self) -> str:
        """Handle frames until the turn ends; returns why it ended."""
        while True:
            event = self._receive(IDLE_TIMEOUT_S)
            if event is None:
                return "stalled"
            if isinstance(event, wire.Stop):
                return "stop"
            if isinstance(event, wire.Mark) and event.name == PROMPT_MARK:
                self.playing = False
                self.endpointer.prompt_finished()
            elif isinstance(event, wire.Dtmf):
                self._barge_in()
                self.digits += event.digit
                return "digits"
            elif isinstance(event, wire.Media) and event.track in (None, "inbound"):
                signal = self._hear(ulaw_to_pcm16(event.payload))
                if signal and signal.kind == "end":
                    return signal.reason

    def _hear(self, pcm16: bytes) -> Signal | None:
        if self.decoder is not None:
            self.decoder.feed(pcm16)
        signal = self.endpointer.audio(pcm16)
        if signal and signal.kind == "speech":
            self._barge_in()
        if signal and signal.kind == "end" or self.decoder is None:
            return signal
        text, heard_ms = self.decoder.snapshot()
        if (text, heard_ms) != self._last_partial:
            self._last_partial = (text, heard_ms)
            self.endpointer.partial(text, heard_ms, self._destination(text))
            return self.endpointer.check()
        return None

    def _destination(self, text: str) -> str | None:
        # Partials repeat while the caller pauses: classify each distinct text once.
        if text and text not in self._destinations:
            self._destinations[text] = self.destination(text, self.language)
        return self._destinations.get(text)

    def _barge_in(self) -> None:
        if self.playing and self.start is not None:
            self._send(wire.Clear(self.start.stream_sid))
            self.playing = False
        self.endpointer.prompt_finished()

    # -- the turn ---------------------------------------------------------------------------
    def _turn(self) -> Any:
        from ivr.routing.decide import Turn

        if self.decoder is None:
            return Turn(digits=self.digits or None)
        result = self.decoder.finish(FINISH_TIMEOUT_S)
        text, confidence = (result.text, result.confidence) if result else (self.decoder.snapshot()[0], None)
        text = " ".join(text.split())
        return Turn(speech=text or None, digits=self.digits or None,
                    asr_confidence=confidence if text else None)

    def _store(self, turn: Any) -> None:
        from sqlalchemy.exc import SQLAlchemyError

        from ivr.store import calls, db

        assert self.start is not None
        detail = {"reason": self.reason, "heard_ms": self.endpointer.now_ms,
                  "speech": bool(turn.speech), "digits": bool(turn.digits)}
        try:
            s = db.session()
            calls.put_pending_turn(s, self.start.call_sid, turn)
            calls.add_event(s, self.start.call_sid, "stream_turn", detail)
            s.commit()
        except (SQLAlchemyError, ValueError) as exc:
            # /voice/turn then finds no pending turn and treats it as no input: a reprompt.
            log.error("stream %s: could not store the turn (%s)", self.start.stream_sid,
                      type(exc).__name__)
        log.info("stream %s: turn over (%s) after %d ms of audio", self.start.stream_sid,
                 self.reason, self.endpointer.now_ms)

    # -- the socket -------------------------------------------------------------------------
    def _receive(self, timeout: float) -> wire.Event | None:
        """Next event, skipping (and logging) frames that are not Media Streams messages."""
        while True:
            raw = self.ws.receive(timeout=timeout)
            if raw is None:
                return None
            try:
                return wire.parse(raw)
            except wire.StreamProtocolError as exc:
                log.warning("media stream: ignoring a bad frame: %s", exc)

    def _close(self) -> None:
        """Close frame, then end our side of TCP: the moment Twilio moves on to the action URL."""
        self.ws.close()
        # Why shut down too: simple-websocket can miss the peer's close reply when a media frame
        # arrives just before it, leaving TCP open until the peer gives up (10 s for some
        # clients). RFC 6455 §7.1.1 has the server close TCP first anyway.
        try:
            self.ws.sock.shutdown(socket.SHUT_WR)
        except (AttributeError, OSError):
            pass

    def _send(self, event: wire.Event) -> None:
        self.ws.send(wire.encode(event))


def _prompt_audio(params: Any, language: str) -> bytes | None:
    """The μ-law audio of the prompt named in the `<Parameter>`s, or None (nothing to play)."""
    from ivr import prompts

    key = params.get("prompt")
    if not key:
        return None
    try:
        values = json.loads(params.get("values") or "{}")
        return prompts.audio_ulaw(key, language, **values)
    except (ValueError, TypeError, prompts.PromptError) as exc:
        log.error("media stream: cannot play prompt %r: %s", key, exc)
        return None


def init_app(app: Flask) -> None:
    """Register `/voice/stream` and the recording path (`/voice/recorded`)."""
    from ivr.web import recording

    sock.init_app(app)
    app.register_blueprint(bp)
    recording.init_app(app)
