"""A small stand-in for Twilio in tests: signs requests and follows the TwiML we answer.

It does what Twilio does with our documents — posts the Gather/Redirect/Connect/Dial/Enqueue/
Record action URLs with the parameters Twilio sends, signed with `RequestValidator` against
the public URL — so call scripts exercise the real webhook chain, never a shortcut.

    sim = TwilioSim(client)
    sim.call()                       # POST /voice/incoming
    sim.say("there is a pothole")    # answer the current <Gather> with speech
    assert sim.verbs() == ["Say", "Dial"]
"""
from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import urljoin, urlsplit

from twilio.request_validator import RequestValidator

PUBLIC_URL = "https://ivr.example.test"
AUTH_TOKEN = "test-auth-token"
_counter = itertools.count(1)


class TwilioSim:
    """One simulated call. `doc` is the last TwiML document received (parsed XML)."""

    def __init__(self, client: Any, *, token: str = AUTH_TOKEN, public_url: str = PUBLIC_URL,
                 from_: str = "+13125550123", to: str = "+13125550311", sid: str | None = None) -> None:
        self.client = client
        self.validator = RequestValidator(token)
        self.public_url = public_url.rstrip("/")
        self.sid = sid or f"CA{next(_counter):032d}"
        self.from_ = from_
        self.to = to
        self.doc: ET.Element | None = None
        self.url = f"{self.public_url}/voice/incoming"   # URL of the current document
        self.last: Any = None                            # last Flask response

    # --- transport -----------------------------------------------------------------------
    def params(self, **extra: Any) -> dict[str, str]:
        """Twilio's standard voice request parameters plus `extra` (None values dropped)."""
        base = {"CallSid": self.sid, "AccountSid": "AC" + "0" * 32, "From": self.from_, "To": self.to,
                "CallStatus": "in-progress", "Direction": "inbound", "ApiVersion": "2010-04-01"}
        base.update({k: str(v) for k, v in extra.items() if v is not None})
        return base

    def sign(self, url: str, params: dict[str, str]) -> str:
        """The X-Twilio-Signature Twilio would send for POSTing `params` to `url`."""
        return self.validator.compute_signature(url, params)

    def post(self, url: str, params: dict[str, str] | None = None, *, signature: str | None = None,
             headers: dict[str, str] | None = None) -> Any:
        """POST signed form data to an absolute or relative URL; parses TwiML into `doc`."""
        absolute = urljoin(self.url, url)
        params = self.params() if params is None else params
        parts = urlsplit(absolute)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        all_headers = {"X-Twilio-Signature": signature if signature is not None else self.sign(absolute, params)}
        all_headers.update(headers or {})
        self.last = self.client.post(path, data=params, headers=all_headers,
                                     base_url=f"{parts.scheme}://{parts.netloc}")
        if self.last.status_code == 200 and self.last.mimetype == "text/xml":
            self.doc = ET.fromstring(self.last.data)
            self.url = absolute
        return self.last

    # --- reading the current document ------------------------------------------------------
    def verbs(self, doc: ET.Element | None = None) -> list[str]:
        """Top-level verb names of the document, in order."""
        return [child.tag for child in (doc if doc is not None else self._doc())]

    def find(self, tag: str) -> ET.Element:
        """The first element named `tag` anywhere in the document (AssertionError if none)."""
        element = self._doc().find(f".//{tag}") if self._doc().tag != tag else self._doc()
        assert element is not None, f"no <{tag}> in {ET.tostring(self._doc(), encoding='unicode')}"
        return element

    def has(self, tag: str) -> bool:
        """True when an element named `tag` is anywhere in the document."""
        return self._doc().find(f".//{tag}") is not None

    def texts(self) -> list[str]:
        """Every <Say> text in the document (prompts fall back to <Say> in tests)."""
        return [el.text or "" for el in self._doc().iter("Say")]

    def _doc(self) -> ET.Element:
        assert self.doc is not None, "no TwiML received yet"
        return self.doc

    # --- what the caller does ----------------------------------------------------------------
    def call(self) -> Any:
        """The call comes in: POST /voice/incoming."""
        self.url = f"{self.public_url}/voice/incoming"
        return self.post(self.url, self.params(CallStatus="ringing"))

    def say(self, speech: str, confidence: float = 0.92) -> Any:
        """Answer the current <Gather> with speech, as Twilio's recogniser would report it."""
        gather = self.find("Gather")
        assert "speech" in (gather.get("input") or ""), "this Gather does not listen to speech"
        return self.post(gather.get("action") or self.url,
                         self.params(SpeechResult=speech, Confidence=f"{confidence:.2f}"))

    def press(self, digits: str) -> Any:
        """Answer the current <Gather> with keypad digits."""
        gather = self.find("Gather")
        return self.post(gather.get("action") or self.url, self.params(Digits=digits))

    def silence(self) -> Any:
        """No input: Twilio moves past the Gather and runs the next verb (our Redirect)."""
        verbs = list(self._doc())
        index = next(i for i, el in enumerate(verbs) if el.tag == "Gather")
        following = [el for el in verbs[index + 1:] if el.tag == "Redirect"]
        assert following, "nothing after the Gather: the call would hang up"
        return self.post(following[0].text or "", self.params())

    def dial_ends(self, status: str, duration: int = 0) -> Any:
        """The <Dial> ends with DialCallStatus `status`; Twilio requests its action URL."""
        dial = self.find("Dial")
        return self.post(dial.get("action") or self.url,
                         self.params(DialCallStatus=status, DialCallDuration=duration))

    def whisper(self) -> Any:
        """The agent answers: Twilio fetches the <Number>/<Sip> url on the agent's leg."""
        noun = self._doc().find(".//Dial/Number")
        if noun is None:
            noun = self._doc().find(".//Dial/Sip")
        assert noun is not None, "no <Dial><Number>/<Sip> to answer"
        url = noun.get("url")
        assert url, "the dialled number has no whisper url"
        child = TwilioSim(self.client, public_url=self.public_url, from_=self.from_, to=noun.text or "")
        child.validator, child.url = self.validator, self.url
        child.post(url, child.params(ParentCallSid=self.sid, Direction="outbound-dial"))
        return child

    def hold(self, position: int = 3, avg_seconds: int = 240) -> "TwilioSim":
        """Twilio fetches the <Enqueue waitUrl> for this caller; returns a sim on that document."""
        enqueue = self.find("Enqueue")
        wait = TwilioSim(self.client, public_url=self.public_url, from_=self.from_, to=self.to, sid=self.sid)
        wait.validator, wait.url = self.validator, self.url
        wait.post(enqueue.get("waitUrl") or "", wait.params(QueuePosition=position, AvgQueueTime=avg_seconds,
                                                           CurrentQueueSize=position, QueueTime=30))
        return wait

    def queue_ends(self, result: str, queue_time: int = 60) -> Any:
        """The caller leaves the queue (`leave`, `bridged`, `hangup`, …): the Enqueue action."""
        enqueue = self.find("Enqueue")
        return self.post(enqueue.get("action") or self.url, self.params(QueueResult=result, QueueTime=queue_time))

    def record(self, url: str = "https://api.twilio.com/2010-04-01/Accounts/AC0/Recordings/RE1",
               duration: int = 12, recording_sid: str = "RE" + "1" * 32) -> Any:
        """The caller leaves a message: Twilio posts the status callback, then the Record action."""
        record = self.find("Record")
        callback = record.get("recordingStatusCallback")
        status_response = None
        if callback:
            saved_doc, saved_url = self.doc, self.url
            status_response = self.post(callback, self.params(
                RecordingSid=recording_sid, RecordingUrl=url, RecordingStatus="completed",
                RecordingDuration=duration))
            self.doc, self.url = saved_doc, saved_url
            assert status_response.status_code == 200
        return self.post(record.get("action") or self.url,
                         self.params(RecordingUrl=url, RecordingDuration=duration, RecordingSid=recording_sid))
