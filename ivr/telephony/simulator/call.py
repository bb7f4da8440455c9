"""One phone call that follows our TwiML as Twilio does (see the package's docstring)."""
from __future__ import annotations

import secrets
import urllib.parse
import xml.etree.ElementTree as ET
from typing import Any, Callable, Mapping

from twilio.request_validator import RequestValidator

from ivr.telephony.simulator.heard import AudioWords, PromptWords, heard_in
from ivr.telephony.simulator.media import MediaStream
from ivr.telephony.simulator.transport import ACCOUNT_SID, Reply, SimulatorError, Transport

INCOMING = "/voice/incoming"   # the phone number's "a call comes in" webhook
STATUS = "/voice/status"       # its "call status changes" callback


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
        """What the caller hears from the document, in order, as words where they can be known
        (see `heard_in`: `audio_words` for <Play>, `prompt_words` for a Media Stream's prompts)."""
        return heard_in(doc if doc is not None else self._doc(), self.absolute, self.audio_words, self.prompt_words)

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
