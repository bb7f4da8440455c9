"""One caller turn on a Media Stream: the session logic behind `/voice/stream` (see media.py).

`StreamTurn` owns one websocket: it waits for `start`, streams the prompt (if the TwiML asked us
to), feeds the caller's audio to the recogniser and the endpointer, sends `clear` on barge-in,
and at the end parks the turn for `/voice/turn` and closes the socket.
"""
from __future__ import annotations

import json
import logging
import socket
import time
from typing import Any, Callable, Mapping

from flask import current_app
from simple_websocket import ConnectionClosed

from ivr.routing.decide import Turn
from ivr.speech.audio import ulaw_to_pcm16
from ivr.speech.engines.base import EngineBusy, EngineUnavailable, Grammar, Result
from ivr.speech.endpointing import EndpointConfig, Endpointer, Signal
from ivr.telephony import stream as wire
from ivr.web.stream_decoder import StreamDecoder

log = logging.getLogger(__name__)

PROMPT_MARK = "prompt-end"
#: Twilio sends a frame every 20 ms; this long without one means the socket is as good as gone.
IDLE_TIMEOUT_S = 3.0
#: How long to wait for `connected` + `start` after the upgrade.
START_TIMEOUT_S = 5.0
#: The longest we wait for the recogniser's final result before using its last partial.
FINISH_TIMEOUT_S = 2.0


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
        self.timing: dict[str, int] = {}      # where the time after the endpoint went (admins, bench)

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
                grammar = step_grammar(params.get("step", ""), self.language)
                self.decoder = StreamDecoder(open_recognizer(engine, wire.SAMPLE_RATE, grammar))
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
    def _turn(self) -> Turn:
        if self.decoder is None:
            return Turn(digits=self.digits or None)
        result = self.decoder.finish(FINISH_TIMEOUT_S)
        text, confidence = (result.text, result.confidence) if result else (self.decoder.snapshot()[0], None)
        text = " ".join(text.split())
        return Turn(speech=text or None, digits=self.digits or None,
                    asr_confidence=confidence if text else None,
                    emergency_heard=watched_emergency(result, self.language, text))

    def _store(self, turn: Turn) -> None:
        from sqlalchemy.exc import SQLAlchemyError

        from ivr.store import calls, db

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


def step_grammar(step: str, language: str) -> Grammar | None:
    """The grammar for a listening step (yes/no at `confirm` …), None for free speech.

    A broken grammar file must not cost the caller their turn: it is logged and the step
    listens with the free domain model instead.
    """
    from ivr.speech.grammars import GrammarError, grammar_for_step

    try:
        return grammar_for_step(current_app.config.get("IVR_GRAMMARS_DIR") or "grammars", language, step)
    except GrammarError as exc:
        log.error("grammar for step %r unusable, listening freely: %s", step, exc)
        return None


def open_recognizer(engine: Any, sample_rate: int, grammar: Grammar | None) -> Any:
    """`engine.recognizer` with `grammar`, or free speech when the engine cannot use the grammar."""
    if grammar is not None:
        try:
            return engine.recognizer(sample_rate, grammar)
        except EngineBusy:
            raise                          # no decoder free: asking again would only wait twice
        except EngineUnavailable as exc:   # e.g. no phrase the model can say: free speech still works
            log.error("grammar %s unusable with %s, listening freely: %s", grammar.name, engine.name, exc)
    return engine.recognizer(sample_rate)


def watched_emergency(result: Result | None, language: str, transcript: str) -> str | None:
    """The emergency watch's verdict for this turn (see ivr.speech.emergency), or None."""
    from ivr.routing.source import current_classifier
    from ivr.speech.emergency import emergency_in_alternatives

    classifier = current_classifier()
    if transcript and classifier.classify(transcript, language).emergency:
        return None     # the transcript says it already; /voice/turn's classification will tell
    return emergency_in_alternatives(classifier, result, language)


def _prompt_audio(params: Mapping[str, str], language: str) -> bytes | None:
    """The μ-law audio of the prompt(s) named in the `<Parameter>`s, or None (nothing to play).

    `prompt` (a key) with optional `values` (JSON object), or `prompts`: a JSON list of
    `[key, {values}]` pairs played one after another (a reprompt, then the question).
    """
    from ivr import prompts

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
