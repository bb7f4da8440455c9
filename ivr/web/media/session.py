"""One caller turn on a Media Stream: the session behind `/voice/stream` (see routes.py).

`StreamTurn` owns one websocket: it waits for `start`, streams the prompt (if the TwiML asked us
to), feeds the caller's audio to the endpointer and a listener (`listen.py`: the recogniser in the
shared decode pool), sends `clear` on barge-in, and at the end parks the turn for `/voice/turn` and
closes the socket. Whatever goes wrong, the listener is closed, so the engine gets its decoders
back: a leaked decoder is one caller fewer who can be heard, until the process restarts.
"""
from __future__ import annotations

import json
import logging
import socket
import time
from typing import Any, Callable, Mapping

from simple_websocket import ConnectionClosed
from sqlalchemy.exc import SQLAlchemyError

from ivr import logs, prompts
from ivr.routing.state import Turn
from ivr.rules_source import current_rules
from ivr.speech.audio import ulaw_to_pcm16
from ivr.speech.endpointing import EndpointConfig, Endpointer, Signal
from ivr.speech.engines.base import EngineUnavailable
from ivr.speech.pool import decode_pool
from ivr.speech.service import speech_service
from ivr.store import calls, db
from ivr.telephony import stream as wire
from ivr.web.media.listen import (Heard, StreamingListener, UtteranceListener, make_listener,
                                  open_recognizer, step_grammar, watched_emergency)

log = logging.getLogger(__name__)

PROMPT_MARK = "prompt-end"
#: Twilio sends a frame every 20 ms; this long without one means the socket is as good as gone.
IDLE_TIMEOUT_S = 3.0
#: How long to wait for `connected` + `start` after the upgrade.
START_TIMEOUT_S = 5.0
#: The longest the caller waits, after the turn ended, for the recogniser's final result. Past
#: it they hear "please say that again" (or the last partial is used): never a long silence.
#: IVR_DECODE_WAIT_MS overrides. 3 s: a Whisper decode on a busy 2-core machine took 2 s
#: (bench/stream_calls.py), and repeating the sentence costs the caller far more than a second.
FINISH_TIMEOUT_S = 3.0


class StreamTurn:
    """One `<Connect><Stream>` session: prompt out, audio and digits in, one turn stored."""

    def __init__(self, ws: Any, config: EndpointConfig,
                 destination: Callable[[str, str], str | None], decode_wait_s: float | None = None) -> None:
        self.ws = ws
        self.decode_wait_s = decode_wait_s or FINISH_TIMEOUT_S
        self.endpointer = Endpointer(config)
        self.destination = destination
        self.start: wire.Start | None = None
        self.language = "en"
        self.listener: StreamingListener | UtteranceListener | None = None
        self.playing = False
        self.digits = ""
        self.reason = ""
        self.ended_at = 0.0
        self._destinations: dict[str, str | None] = {}
        self.timing: dict[str, int] = {}      # where the time after the endpoint went (admins, bench)

    # -- the session ------------------------------------------------------------------------
    def run(self) -> None:
        """Drive the socket until the turn ends; store the turn; close (unless Twilio did)."""
        try:
            self._run()
        finally:
            if self.listener is not None:
                self.listener.close()

    def _run(self) -> None:
        closed_by_peer = False
        try:
            self.start = self._await_start()
            if self.start is None:
                return
            logs.bind_call(self.start.call_sid)   # the upgrade request carried no CallSid
            self._begin()
            self.reason = self._listen()
        except ConnectionClosed:
            self.reason, closed_by_peer = "dropped", True
        self.ended_at = time.monotonic()
        if self.start is not None:
            turn = self._turn()
            self.timing["finish_ms"] = round((time.monotonic() - self.ended_at) * 1000)
            self._store(turn)
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
        assert self.start is not None
        params = self.start.custom_parameters
        rules = current_rules()
        self.language = params.get("language") if params.get("language") in rules.languages \
            else rules.default_language
        engine = None
        try:
            engine = speech_service().engine_for(self.language)
            if engine is not None:
                grammar = step_grammar(params.get("step", ""), self.language)
                self.listener = make_listener(
                    engine, lambda: open_recognizer(engine, wire.SAMPLE_RATE, grammar),
                    decode_pool(), self.decode_wait_s)
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
        listener = self.listener
        if listener is not None:
            listener.feed(pcm16)
        signal = self.endpointer.audio(pcm16)
        kind = signal.kind if signal else None
        if kind == "speech":
            self._barge_in()
        if kind == "end" or listener is None:
            return signal if kind == "end" else None
        if kind == "pause":
            listener.pause(self.endpointer.now_ms, self.endpointer.speech_started_ms,
                           idle_only=signal is not None and signal.reason == "idle")
        elif kind == "resume":
            listener.resume()
        hypothesis = listener.poll()
        if hypothesis is None:
            return None
        destination = self._destination(hypothesis.text)
        if hypothesis.whole:
            self.endpointer.decoded(hypothesis.text, hypothesis.heard_to_ms, destination)
        else:
            self.endpointer.partial(hypothesis.text, hypothesis.heard_to_ms, destination)
        return self.endpointer.check()

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
    def _turn(self) -> Turn:
        spoke = self.endpointer.speech_started_ms is not None
        if self.listener is None:
            # No recogniser (engine down, or every decoder busy): keys still work, and a caller
            # who spoke is asked again rather than told we heard nothing.
            return Turn(digits=self.digits or None, unheard="busy" if spoke and not self.digits else None)
        heard = self._heard(spoke)
        result = heard.result
        text = " ".join(result.text.split()) if result else ""
        if isinstance(self.listener, UtteranceListener):
            self.timing["decodes"] = self.listener.decodes
        if heard.unheard:
            self.timing["unheard"] = heard.unheard
        return Turn(speech=text or None, digits=self.digits or None,
                    asr_confidence=result.confidence if text and result else None,
                    emergency_heard=watched_emergency(result, self.language, text),
                    unheard=heard.unheard if not text and not self.digits else None)

    def _heard(self, spoke: bool) -> Heard:
        assert self.listener is not None
        if isinstance(self.listener, UtteranceListener):
            return self.listener.finish(spoke, self.decode_wait_s, self.endpointer.now_ms,
                                        self.endpointer.speech_started_ms)
        return self.listener.finish(spoke, self.decode_wait_s)

    def _store(self, turn: Turn) -> None:
        assert self.start is not None
        detail = {"reason": self.reason, "heard_ms": self.endpointer.now_ms,
                  "speech": bool(turn.speech), "digits": bool(turn.digits), **self.timing}
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


def _prompt_audio(params: Mapping[str, str], language: str) -> bytes | None:
    """The μ-law audio of the prompt(s) named in the `<Parameter>`s, or None (nothing to play).

    `prompt` (a key) with optional `values` (JSON object), or `prompts`: a JSON list of
    `[key, {values}]` pairs played one after another (a reprompt, then the question).
    """
    try:
        if params.get("prompts"):
            wanted = [(str(key), dict(values)) for key, values in json.loads(params["prompts"])]
        elif params.get("prompt"):
            wanted = [(params["prompt"], dict(json.loads(params.get("values") or "{}")))]
        else:
            return None
        parts = [prompts.audio_ulaw(key, language, **values) for key, values in wanted]
    except (ValueError, TypeError, prompts.PromptError) as exc:
        log.error("media stream: cannot play the prompt %r: %s", params.get("prompts") or params.get("prompt"), exc)
        return None
    if any(part is None for part in parts):
        return None          # a prompt with a hole in it is worse than the silence after <Say>
    return b"".join(part for part in parts if part)
