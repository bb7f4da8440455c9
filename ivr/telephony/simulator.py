"""A stand-in for Twilio: one phone call that follows our TwiML as Twilio does.

Used by `ivr call` (a person at a terminal), the tests (Flask's test client) and the benchmarks
(many callers over HTTP). It posts the webhooks Twilio posts, with Twilio's parameters and an
`X-Twilio-Signature` made by twilio's own `RequestValidator`, and follows each answer's verbs:
`<Gather>` (speech, keys or silence), `<Redirect>`, `<Connect><Stream>` (a Media Stream: the
caller's audio and keys over a websocket, see `MediaStream`), `<Dial>` (and the agent's whisper
leg), `<Enqueue>` (the hold music's waitUrl, then the queue result), `<Record>` (the recording
status callback, then the action) and `<Hangup>`.

    call = SimulatedCall(FlaskTransport(app.test_client()), token=..., public_url=...)
    call.call()                       # POST /voice/incoming
    call.say("there is a pothole")    # answer the current <Gather> with speech
    assert call.verbs() == ["Say", "Dial"]

Nothing here knows our webhooks beyond `/voice/incoming` and `/voice/status`, the two URLs an
admin configures on the phone number: every other URL comes from the TwiML, as for Twilio.
"""
from __future__ import annotations

import contextlib
import http.client
import json
import secrets
import socket
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol

from twilio.request_validator import RequestValidator

from ivr.telephony import stream as wire

INCOMING = "/voice/incoming"   # the phone number's "a call comes in" webhook
STATUS = "/voice/status"       # its "call status changes" callback
ACCOUNT_SID = "AC" + "0" * 32
FRAME_S = wire.FRAME_MS / 1000
SILENT_FRAME = b"\xff" * wire.FRAME_BYTES   # μ-law for 0


class SimulatorError(RuntimeError):
    """The line answered something Twilio could not follow (an error status, invalid TwiML)."""


class Unreachable(SimulatorError):
    """Nothing answered at the line's address."""


@dataclass(frozen=True)
class Reply:
    """One HTTP answer, with the attribute names of Flask's test response."""
    status_code: int
    data: bytes
    mimetype: str
    headers: Mapping[str, str] = field(default_factory=dict)

    def get_data(self) -> bytes:
        return self.data


class Transport(Protocol):
    """How requests reach the line: `request("POST", absolute_url, form, headers)`."""

    def request(self, method: str, url: str, form: Mapping[str, str] | None,
                headers: Mapping[str, str]) -> Reply: ...


class FlaskTransport:
    """Requests through a Flask test client (the URL's scheme and host become its base_url)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def request(self, method: str, url: str, form: Mapping[str, str] | None,
                headers: Mapping[str, str]) -> Reply:
        parts = urllib.parse.urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        answer = self.client.open(path, method=method, data=dict(form or {}), headers=dict(headers),
                                  base_url=f"{parts.scheme}://{parts.netloc}")
        return Reply(answer.status_code, answer.get_data(), answer.mimetype, dict(answer.headers))


class HttpTransport:
    """Requests over HTTP/1.1 to `base_url`, on one kept-alive connection (one per caller)."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SimulatorError(f"not an http(s) URL: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.https = parts.scheme == "https"
        self.host, self.port, self.timeout = parts.hostname, parts.port, timeout
        self.conn: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        kind = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        return kind(self.host, self.port, timeout=self.timeout)

    def request(self, method: str, url: str, form: Mapping[str, str] | None,
                headers: Mapping[str, str]) -> Reply:
        parts = urllib.parse.urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        body = urllib.parse.urlencode(form) if form is not None else None
        headers = {**headers, **({"Content-Type": "application/x-www-form-urlencoded"} if body is not None else {})}
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = self._connect()
            try:
                self.conn.request(method, path, body=body, headers=headers)
                answer = self.conn.getresponse()
                data = answer.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # The server closed the idle kept-alive connection while the caller listened;
                # the request never reached the app, so any HTTP client sends it again.
                self.close()
                if attempt == 2:
                    raise
                continue
            except OSError as exc:
                self.close()
                raise Unreachable(f"cannot reach {self.base_url} ({exc})") from None
            mimetype = (answer.getheader("Content-Type") or "").split(";")[0].strip()
            return Reply(answer.status, data, mimetype, dict(answer.getheaders()))
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


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
        from websockets.sync.client import connect

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
        from ivr.speech.audio import pcm16_to_ulaw

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
        from ivr.speech.audio import pcm16_to_ulaw

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
        from websockets.exceptions import ConnectionClosed

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
        from websockets.exceptions import ConnectionClosed

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


#: What the caller hears, as words: (audio URL) → words, and (prompt key, language, values) →
#: words for a Media Stream's `<Parameter name="prompts">`. None: not known, show what it is.
AudioWords = Callable[[str], "str | None"]
PromptWords = Callable[[str, str, Mapping[str, Any]], "str | None"]


class SimulatedCall:
    """One call. `doc` is the last TwiML document received (parsed), `url` where it came from."""

    def __init__(self, transport: Transport, *, token: str, public_url: str,
                 from_: str = "+13125550123", to: str = "+13125550311", sid: str | None = None,
                 audio_words: AudioWords | None = None, prompt_words: PromptWords | None = None) -> None:
        self.transport = transport
        self.validator = RequestValidator(token)
        self.token = token
        self.public_url = public_url.rstrip("/")
        self.sid = sid or "CA" + secrets.token_hex(16)
        self.from_, self.to = from_, to
        self.audio_words, self.prompt_words = audio_words, prompt_words
        self.doc: ET.Element | None = None
        self.url = self.absolute(INCOMING)   # the URL of the current document
        self.last: Reply | None = None
        self.stream: MediaStream | None = None   # the last Media Stream played

    # --- transport -----------------------------------------------------------------------
    def absolute(self, url: str) -> str:
        return urllib.parse.urljoin(self.public_url + "/", url)

    def params(self, **extra: Any) -> dict[str, str]:
        """Twilio's standard voice request parameters plus `extra` (None values dropped)."""
        base = {"CallSid": self.sid, "AccountSid": ACCOUNT_SID, "From": self.from_, "To": self.to,
                "CallStatus": "in-progress", "Direction": "inbound", "ApiVersion": "2010-04-01"}
        base.update({k: str(v) for k, v in extra.items() if v is not None})
        return base

    def sign(self, url: str, params: Mapping[str, str]) -> str:
        """The X-Twilio-Signature Twilio sends for POSTing `params` to `url`."""
        return self.validator.compute_signature(url, dict(params))

    def post(self, url: str, params: Mapping[str, str] | None = None, *, signature: str | None = None,
             headers: Mapping[str, str] | None = None) -> Reply:
        """POST signed form data to `url` (relative to the current document's URL, as Twilio
        resolves TwiML URLs); a TwiML answer becomes the current document."""
        absolute = urllib.parse.urljoin(self.url, url)
        params = self.params() if params is None else dict(params)
        signed = {"X-Twilio-Signature": signature if signature is not None else self.sign(absolute, params)}
        self.last = self.transport.request("POST", absolute, params, {**signed, **(headers or {})})
        if self.last.status_code == 200 and self.last.mimetype in ("text/xml", "application/xml"):
            try:
                self.doc = ET.fromstring(self.last.data)
            except ET.ParseError:
                raise SimulatorError(f"{absolute} answered invalid TwiML: {self.last.data[:200]!r}") from None
            self.url = absolute
        return self.last

    # --- reading the current document ------------------------------------------------------
    def verbs(self, doc: ET.Element | None = None) -> list[str]:
        """Top-level verb names of the document, in order."""
        return [child.tag for child in (doc if doc is not None else self._doc())]

    def find(self, tag: str) -> ET.Element:
        """The first element named `tag` (a path like "Dial/Number" works) anywhere in the document."""
        element = self._doc().find(f".//{tag}") if self._doc().tag != tag else self._doc()
        assert element is not None, f"no <{tag}> in {ET.tostring(self._doc(), encoding='unicode')}"
        return element

    def has(self, tag: str) -> bool:
        return self._doc().find(f".//{tag}") is not None

    def texts(self) -> list[str]:
        """Every <Say> text in the document (with its SSML children's words: <sub>, <say-as> …)."""
        return ["".join(el.itertext()) for el in self._doc().iter("Say")]

    def heard(self, doc: ET.Element | None = None) -> list[str]:
        """What the caller hears from the document, in order, as words where they can be known:
        <Say> text, <Play> audio (through `audio_words`), a Media Stream's prompts (`prompt_words`)."""
        heard: list[str] = []
        for element in (doc if doc is not None else self._doc()).iter():
            if element.tag == "Say" and "".join(element.itertext()).strip():
                heard.append("".join(element.itertext()).strip())   # SSML children hold words too
            elif element.tag == "Play" and element.text:
                words = self.audio_words(self.absolute(element.text.strip())) if self.audio_words else None
                heard.append(words or f"♪ (a recording: {element.text.strip().rsplit('/', 1)[-1]})")
            elif element.tag == "Stream":
                heard.extend(self._stream_prompts(element))
        return heard

    def _stream_prompts(self, stream: ET.Element) -> list[str]:
        parameters = {p.get("name", ""): p.get("value", "") for p in stream.iter("Parameter")}
        language = parameters.get("language", "")
        try:
            if parameters.get("prompts"):
                wanted = [(str(key), dict(values or {})) for key, values in json.loads(parameters["prompts"])]
            elif parameters.get("prompt"):
                wanted = [(parameters["prompt"], dict(json.loads(parameters.get("values") or "{}")))]
            else:
                return []
        except (ValueError, TypeError):
            return ["♪ (a prompt the simulator cannot read)"]
        heard = []
        for key, values in wanted:
            words = self.prompt_words(key, language, values) if self.prompt_words else None
            heard.append(words or f"♪ (prompt {key})")
        return heard

    def _doc(self) -> ET.Element:
        assert self.doc is not None, "no TwiML received yet"
        return self.doc

    # --- what the caller (and Twilio) do -----------------------------------------------------
    def call(self) -> Reply:
        """The call comes in: POST /voice/incoming."""
        self.url = self.absolute(INCOMING)
        return self.post(self.url, self.params(CallStatus="ringing"))

    def say(self, speech: str, confidence: float = 0.92) -> Reply:
        """Answer the current <Gather> with speech, as Twilio's recogniser reports it."""
        gather = self.find("Gather")
        assert "speech" in (gather.get("input") or ""), "this Gather does not listen to speech"
        return self.post(gather.get("action") or self.url,
                         self.params(SpeechResult=speech, Confidence=f"{confidence:.2f}"))

    def press(self, digits: str) -> Reply:
        """Answer the current <Gather> with keypad digits."""
        gather = self.find("Gather")
        return self.post(gather.get("action") or self.url, self.params(Digits=digits))

    def silence(self) -> Reply:
        """No input: Twilio moves past the <Gather> and runs the next verb (our <Redirect>)."""
        verbs = list(self._doc())
        index = next(i for i, el in enumerate(verbs) if el.tag == "Gather")
        following = [el for el in verbs[index + 1:] if el.tag == "Redirect"]
        assert following, "nothing after the Gather: the call would hang up"
        return self.post(following[0].text or "", self.params())

    def redirect(self) -> Reply:
        """Follow the document's <Redirect>."""
        return self.post(self.find("Redirect").text or "", self.params())

    def connect_stream(self, *, audio: bytes = b"", digits: str = "", ws_base: str | None = None,
                       timeout_s: float = 20.0) -> Reply:
        """Play the current `<Connect><Stream>`: open the Media Stream, press `digits` or say
        `audio` (8 kHz PCM16), then stay silent until the line closes it; then post the Connect
        action, as Twilio does when the stream ends. `ws_base` replaces the Stream URL's host
        (the line's public URL is not where a local test server listens)."""
        connect = self.find("Connect")
        stream = connect.find("Stream")
        assert stream is not None, "no <Stream> in <Connect>"
        ws_url = stream.get("url", "")
        path = urllib.parse.urlsplit(ws_url).path
        # Twilio signs the URL it connects to: the line's public URL with a ws(s) scheme.
        signed = "ws" + self.public_url[len("http"):] + path
        if ws_base:
            ws_url = ws_base.rstrip("/") + path
        parameters = {p.get("name", ""): p.get("value", "") for p in stream.iter("Parameter")}
        with MediaStream(ws_url, call_sid=self.sid, parameters=parameters, auth_token=self.token,
                         signed_url=signed) as media:
            self.stream = media
            for digit in digits.replace(" ", ""):
                media.press(digit)
            media.speak_until_closed(audio, timeout_s)
        return self.post(connect.get("action") or self.url, self.params())

    def dial_ends(self, status: str, duration: int = 0) -> Reply:
        """The <Dial> ends with DialCallStatus `status`; Twilio requests its action URL."""
        dial = self.find("Dial")
        return self.post(dial.get("action") or self.url, self.params(DialCallStatus=status,
                                                                     DialCallDuration=duration))

    def whisper(self) -> "SimulatedCall":
        """The agent answers: Twilio fetches the <Number>/<Sip> url on the agent's leg."""
        noun = self._doc().find(".//Dial/Number")
        if noun is None:
            noun = self._doc().find(".//Dial/Sip")
        assert noun is not None, "no <Dial><Number>/<Sip> to answer"
        url = noun.get("url")
        assert url, "the dialled number has no whisper url"
        agent = self._leg(to=noun.text or "", sid=None)
        agent.post(url, agent.params(ParentCallSid=self.sid, Direction="outbound-dial"))
        return agent

    def hold(self, position: int = 3, avg_seconds: int = 240) -> "SimulatedCall":
        """Twilio fetches the <Enqueue waitUrl> for this caller; a call on that document."""
        enqueue = self.find("Enqueue")
        wait = self._leg(to=self.to, sid=self.sid)
        wait.post(enqueue.get("waitUrl") or "", wait.params(QueuePosition=position, AvgQueueTime=avg_seconds,
                                                           CurrentQueueSize=position, QueueTime=30))
        return wait

    def queue_ends(self, result: str, queue_time: int = 60) -> Reply:
        """The caller leaves the queue (`leave`, `bridged`, `hangup`, …): the Enqueue action."""
        enqueue = self.find("Enqueue")
        return self.post(enqueue.get("action") or self.url, self.params(QueueResult=result, QueueTime=queue_time))

    def record(self, url: str = "https://api.twilio.com/2010-04-01/Accounts/AC0/Recordings/RE1",
               duration: int = 12, recording_sid: str = "RE" + "1" * 32) -> Reply:
        """The caller leaves a message: Twilio posts the status callback, then the Record action."""
        record = self.find("Record")
        callback = record.get("recordingStatusCallback")
        if callback:
            doc, where = self.doc, self.url
            answer = self.post(callback, self.params(RecordingSid=recording_sid, RecordingUrl=url,
                                                     RecordingStatus="completed", RecordingDuration=duration))
            self.doc, self.url = doc, where
            if answer.status_code != 200:
                raise SimulatorError(f"recording status callback answered {answer.status_code}")
        return self.post(record.get("action") or self.url,
                         self.params(RecordingUrl=url, RecordingDuration=duration, RecordingSid=recording_sid))

    def hang_up(self, status: str = "completed", duration: int = 42) -> Reply:
        """The call is over: Twilio's status callback (the document does not change)."""
        doc, where = self.doc, self.url
        answer = self.post(self.absolute(STATUS), self.params(CallStatus=status, CallDuration=duration))
        self.doc, self.url = doc, where
        return answer

    def run(self, answer: Callable[[str, "SimulatedCall"], str], *, max_steps: int = 40,
            voice: Callable[[str, str], bytes] | None = None, ws_base: str | None = None,
            pause: Callable[[], bool] | None = None, on_line: Callable[[str, str], None] | None = None,
            agent_answers: bool = True) -> str:
        """Play the whole call as Twilio would: ring, follow every document, answer each listening
        step with `answer(kind)`, end with the status callback. Returns how the call ended.

        - `answer(kind, call)`: kind is "speech" (a <Gather> that listens to speech and keys), "keys"
          (keys only) or "stream" (a Media Stream); the reply is words (speech), digits (keys) or ""
          (silence). Speech on a Media Stream is spoken by `voice(words, language)` → 8 kHz PCM16.
        - `pause()` runs before each webhook after the first (a caller listening); False ends the
          call there, unfinished ("cut").
        - `on_line(who, words)`: what is heard — who is "line", "agent", "dial" or "queue".
        - `agent_answers`: a <Dial> is answered (whisper, bridged, completed); else "no-answer".
        """
        tell = on_line or (lambda _who, _words: None)
        self.call()
        ended = f"stopped after {max_steps} documents"
        for _ in range(max_steps):
            self._check_answer()
            for words in self.heard():
                tell("line", words)
            outcome = self._next(answer, voice, ws_base, tell, agent_answers, pause)
            if outcome is not None:
                ended = outcome
                break
        if ended != "cut":
            self.hang_up()
        return ended

    def _tell_heard(self, tell: Callable[[str, str], None]) -> None:
        if self.last is not None and self.last.status_code == 200:
            for words in self.heard():
                tell("line", words)

    def _check_answer(self) -> None:
        assert self.last is not None
        if self.last.status_code != 200:
            raise SimulatorError(f"{self.url} answered {self.last.status_code}: {self.last.data[:200]!r}")

    def _next(self, answer: Callable[[str, "SimulatedCall"], str], voice: Callable[[str, str], bytes] | None,
              ws_base: str | None, tell: Callable[[str, str], None], agent_answers: bool,
              pause: Callable[[], bool] | None) -> str | None:
        """Run the current document's verbs until one leads to a webhook (posted: None) or the
        call ends (how it ended)."""
        def go() -> bool:
            return pause() if pause else True

        for verb in self._doc():
            if verb.tag == "Gather":
                said = answer("speech" if "speech" in (verb.get("input") or "") else "keys", self)
                if said:
                    if not go():
                        return "cut"
                    self.press(said) if _is_keys(said) else self.say(said, 0.9)
                    return None
            elif verb.tag == "Redirect":
                if not go():
                    return "cut"
                self.post(verb.text or "", self.params())
                return None
            elif verb.tag == "Connect" and verb.find("Stream") is not None:
                said = answer("stream", self)
                audio = b""
                if said and not _is_keys(said):
                    if voice is None:
                        raise SimulatorError("speech on a Media Stream needs a voice (words → audio)")
                    language = next((p.get("value", "") for p in verb.iter("Parameter")
                                     if p.get("name") == "language"), "")
                    audio = voice(said, language)
                if not go():
                    return "cut"
                self.connect_stream(audio=audio, digits=said if _is_keys(said) else "", ws_base=ws_base)
                return None
            elif verb.tag == "Dial":
                noun = next(iter(verb), None)
                target = ((noun.text if noun is not None else verb.text) or "").strip()
                tell("dial", target)
                if noun is not None and noun.get("url") and agent_answers:
                    for words in self.whisper().heard():
                        tell("agent", words)
                if not verb.get("action"):
                    return f"connected to {target}" if agent_answers else f"no answer from {target}"
                if not go():
                    return "cut"
                self.dial_ends("completed" if agent_answers else "no-answer", 30 if agent_answers else 0)
                if agent_answers:
                    self._tell_heard(tell)
                    return f"connected to {target}"
                return None
            elif verb.tag == "Enqueue":
                if verb.get("waitUrl"):
                    for words in self.hold(position=1, avg_seconds=60).heard():
                        tell("queue", words)
                if not verb.get("action"):
                    return f"waiting in queue {verb.text!r}"
                if not go():
                    return "cut"
                self.queue_ends("bridged", 20)
                self._tell_heard(tell)
                return f"waiting in queue {verb.text!r}, then bridged to an agent"
            elif verb.tag == "Record":
                if not go():
                    return "cut"
                self.record(duration=5)
                return None
            elif verb.tag in ("Hangup", "Reject"):
                return "the line hung up"
        return "the document ended (Twilio hangs up)"

    def _leg(self, *, to: str, sid: str | None) -> "SimulatedCall":
        leg = SimulatedCall(self.transport, token=self.token, public_url=self.public_url, from_=self.from_,
                            to=to, sid=sid, audio_words=self.audio_words, prompt_words=self.prompt_words)
        leg.url = self.url
        return leg


def _is_keys(text: str) -> bool:
    return bool(text.strip()) and all(ch in "0123456789*#" for ch in text.replace(" ", ""))


SMS_INCOMING = "/sms/incoming"   # the phone number's "a message comes in" webhook


class SimulatedTexter:
    """A citizen texting the city number, as Twilio's Messaging webhook delivers each text.

    Posts the signed form Twilio posts (MessageSid, From, To, Body, NumMedia …) to `/sms/incoming`
    and reads the reply's <Message> bodies. `resend()` posts the last text again with the same
    MessageSid, as Twilio does when our answer was late.

        texter = SimulatedTexter(FlaskTransport(app.test_client()), token=..., public_url=...)
        assert "Case" in texter.text("pothole at 120 Main St")
    """

    def __init__(self, transport: Transport, *, token: str, public_url: str,
                 from_: str = "+13125550142", to: str = "+13125550311") -> None:
        self.transport = transport
        self.validator = RequestValidator(token)
        self.url = public_url.rstrip("/") + SMS_INCOMING
        self.from_, self.to = from_, to
        self.last: Reply | None = None
        self.last_params: dict[str, str] = {}

    def params(self, body: str, *, media: int = 0, sid: str | None = None) -> dict[str, str]:
        params = {"MessageSid": sid or "SM" + secrets.token_hex(16), "AccountSid": ACCOUNT_SID,
                  "From": self.from_, "To": self.to, "Body": body, "NumMedia": str(media), "NumSegments": "1",
                  "SmsStatus": "received", "ApiVersion": "2010-04-01"}
        for n in range(media):
            params[f"MediaUrl{n}"] = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/media/{n}"
            params[f"MediaContentType{n}"] = "image/jpeg"
        return params

    def post(self, params: Mapping[str, str], *, signature: str | None = None) -> Reply:
        """POST `params` signed (or with `signature`, e.g. a forged one)."""
        self.last_params = dict(params)
        sign = signature if signature is not None else self.validator.compute_signature(self.url, dict(params))
        self.last = self.transport.request("POST", self.url, params, {"X-Twilio-Signature": sign})
        return self.last

    def text(self, body: str, *, media: int = 0, sid: str | None = None) -> str:
        """Send a text; the reply's text ("" when the line answered nothing)."""
        return self.reply_text(self.post(self.params(body, media=media, sid=sid)))

    def resend(self) -> str:
        """Twilio's retry of the last text (same MessageSid)."""
        return self.reply_text(self.post(self.last_params))

    @staticmethod
    def reply_text(reply: Reply) -> str:
        """The <Message> bodies of a TwiML answer, joined (SimulatorError on an error or invalid TwiML)."""
        if reply.status_code != 200 or reply.mimetype not in ("text/xml", "application/xml"):
            raise SimulatorError(f"/sms/incoming answered {reply.status_code} {reply.mimetype}")
        try:
            doc = ET.fromstring(reply.data)
        except ET.ParseError:
            raise SimulatorError(f"/sms/incoming answered invalid TwiML: {reply.data[:200]!r}") from None
        if doc.tag != "Response":
            raise SimulatorError(f"/sms/incoming answered <{doc.tag}>, not <Response>")
        return " ".join((m.findtext("Body") or m.text or "").strip() for m in doc.iter("Message")).strip()
