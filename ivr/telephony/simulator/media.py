"""Twilio's side of a Media Stream: the caller's audio and keys over a signed websocket."""
from __future__ import annotations

import contextlib
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

from twilio.request_validator import RequestValidator
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from ivr.speech.audio import pcm16_to_ulaw
from ivr.telephony import stream as wire
from ivr.telephony.simulator.transport import ACCOUNT_SID

FRAME_S = wire.FRAME_MS / 1000
SILENT_FRAME = b"\xff" * wire.FRAME_BYTES   # μ-law for 0


@dataclass
class Heard:
    """What the line sent on a Media Stream, with monotonic times."""
    media_bytes: int = 0
    marks_sent: list[str] = field(default_factory=list)
    clears: list[float] = field(default_factory=list)
    marks_echoed: list[str] = field(default_factory=list)
    closed_at: float | None = None


class MediaStream:
    """Twilio's side of one bidirectional `<Connect><Stream>`. Use as a context manager.

    It speaks the wire protocol (`ivr.telephony.stream`): a signed websocket upgrade, `connected`,
    `start` with the `<Parameter>`s, 20 ms μ-law `media` frames paced in real time, `dtmf`, `stop`.
    It also plays the caller's side of what the line sends: outbound audio is "played" at real-time
    speed, each `mark` is echoed once the audio before it has played, and a `clear` drops unplayed
    audio and echoes the pending marks at once, as Twilio does.
    """

    def __init__(self, ws_url: str, *, call_sid: str, parameters: Mapping[str, str], auth_token: str,
                 signed_url: str | None = None, stream_sid: str | None = None) -> None:
        self.ws_url, self.call_sid, self.parameters = ws_url, call_sid, dict(parameters)
        self.stream_sid = stream_sid or "MZ" + secrets.token_hex(16)
        signed = signed_url or ws_url
        self.headers = ({"X-Twilio-Signature": RequestValidator(auth_token).compute_signature(signed, {})}
                        if auth_token else {})
        self.heard = Heard()
        self.frame_times: list[float] = []   # when each media frame we sent left (monotonic)
        self.ws: Any = None
        self._seq = 0
        self._chunk = 0
        self._lock = threading.Lock()
        self._queued_ms = 0.0
        self._played_ms = 0.0
        self._pending_marks: list[tuple[float, str]] = []
        self._closed = threading.Event()
        self._threads: list[threading.Thread] = []
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> "MediaStream":
        self.ws = self._stack.enter_context(connect(self.ws_url, additional_headers=self.headers, open_timeout=5))
        self._send(wire.Connected())
        self._send(wire.Start(self.stream_sid, self.call_sid, ACCOUNT_SID,
                              custom_parameters=self.parameters, sequence_number=self._next_seq()))
        for target in (self._reader, self._player):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()
        self._closed.set()
        for thread in self._threads:
            thread.join(timeout=2)

    @property
    def closed(self) -> bool:
        """Whether the line has closed the stream (what makes Twilio fetch the action URL)."""
        return self._closed.is_set()

    def wait_closed(self, timeout: float) -> bool:
        return self._closed.wait(timeout)

    # -- the caller -------------------------------------------------------------------------
    def send_audio(self, pcm16: bytes) -> float | None:
        """Send 8 kHz PCM16 as 20 ms frames in real time; when the last frame left (monotonic),
        or None if the line closed the stream first (then sending stops)."""
        ulaw = pcm16_to_ulaw(pcm16) if pcm16 else b""
        ulaw += SILENT_FRAME[: (-len(ulaw)) % wire.FRAME_BYTES]
        start = time.monotonic()
        sent_at = None
        for index in range(0, len(ulaw), wire.FRAME_BYTES):
            # Absolute schedule: frame k leaves at start + k·20 ms, however long sending took.
            delay = start + (index // wire.FRAME_BYTES) * FRAME_S - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if not self._send_media(ulaw[index:index + wire.FRAME_BYTES]):
                return None
            sent_at = time.monotonic()
            self.frame_times.append(sent_at)
        return sent_at

    def send_silence(self, ms: int) -> float | None:
        """`ms` of line silence in real time (stops early when the line closes)."""
        return self.send_audio(bytes(2 * 8 * ms))

    def send_fast(self, pcm16: bytes) -> None:
        """Audio as fast as the socket takes it (the line's endpointing runs on audio time)."""
        ulaw = pcm16_to_ulaw(pcm16)
        for index in range(0, len(ulaw), wire.FRAME_BYTES):
            if not self._send_media(ulaw[index:index + wire.FRAME_BYTES]):
                return

    def speak_until_closed(self, pcm16: bytes, timeout_s: float = 20.0) -> bool:
        """The caller says `pcm16`, then the line is silent until the line closes the stream.
        False when it never closed within `timeout_s` of audio."""
        self.send_audio(pcm16)
        deadline = time.monotonic() + timeout_s
        while not self.closed and time.monotonic() < deadline:
            self.send_silence(200)
        return self.closed

    def press(self, digit: str) -> None:
        """A keypad press, as Twilio reports it on the stream."""
        self._send(wire.Dtmf(self.stream_sid, digit, sequence_number=self._next_seq()))

    def stop(self) -> None:
        """The caller hung up: Twilio's `stop` message."""
        self._send(wire.Stop(self.stream_sid, self.call_sid, ACCOUNT_SID, self._next_seq()))

    def drop(self) -> None:
        """The network drops: the TCP connection dies without a websocket close."""
        try:
            self.ws.socket.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.ws.socket.close()

    # -- internals --------------------------------------------------------------------------
    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _send(self, event: wire.Event) -> bool:
        if self.closed:
            return False
        try:
            self.ws.send(wire.encode(event))
            return True
        except (ConnectionClosed, OSError):
            return False

    def _send_media(self, frame: bytes) -> bool:
        self._chunk += 1
        return self._send(wire.Media(self.stream_sid, frame, "inbound", self._chunk,
                                     self._chunk * wire.FRAME_MS, self._next_seq()))

    def _reader(self) -> None:
        try:
            for raw in self.ws:
                self._handle(wire.parse(raw))
        except (ConnectionClosed, OSError):
            pass
        self.heard.closed_at = time.monotonic()
        self._closed.set()

    def _handle(self, event: wire.Event) -> None:
        with self._lock:
            if isinstance(event, wire.Media):
                self.heard.media_bytes += len(event.payload)
                self._queued_ms = max(self._queued_ms, self._played_ms) + len(event.payload) / 8
            elif isinstance(event, wire.Mark):
                self.heard.marks_sent.append(event.name)
                self._pending_marks.append((self._queued_ms, event.name))
            elif isinstance(event, wire.Clear):
                self.heard.clears.append(time.monotonic())
                self._played_ms = self._queued_ms
        if isinstance(event, wire.Clear):
            self._echo_marks()

    def _player(self) -> None:
        while not self._closed.wait(FRAME_S):
            with self._lock:
                self._played_ms = min(self._queued_ms, self._played_ms + FRAME_S * 1000)
            self._echo_marks()

    def _echo_marks(self) -> None:
        with self._lock:
            due = [name for at, name in self._pending_marks if at <= self._played_ms]
            self._pending_marks = [(at, n) for at, n in self._pending_marks if at > self._played_ms]
        for name in due:
            self.heard.marks_echoed.append(name)
            self._send(wire.Mark(self.stream_sid, name, self._next_seq()))
