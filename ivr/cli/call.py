"""`ivr call` — phone the line from a terminal, as Twilio would, with signed requests.

For admins and developers trying the line that `make run` serves: it posts the webhooks Twilio
posts (signed with the same auth token), follows the TwiML it gets back, prints what the caller
would hear, and sends your answers. A typed answer is speech (a `<Gather>` gets it as
`SpeechResult`; a Media Stream gets it spoken by espeak, so our own recogniser hears it); digits
are keypad presses; an empty line is silence.
"""
from __future__ import annotations

import itertools
import json
import os
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Callable, Iterator

import click
from twilio.request_validator import RequestValidator

from ivr.speech.audio import parse_wav, pcm16_to_ulaw
from ivr.telephony import stream as wire

if TYPE_CHECKING:
    from websockets.sync.client import ClientConnection

DEV_TOKEN = "dev-auth-token-not-secret"   # the token `make run` serves with (see Makefile)
FRAME_S = wire.FRAME_MS / 1000            # Twilio sends 20 ms frames of 8 kHz μ-law
SILENCE = b"\xff"                          # μ-law for 0
STREAM_TIMEOUT_S = 20.0


class LocalCall:
    """One call into a running server; `answer` supplies what the caller says at each listening step."""

    def __init__(self, base_url: str, token: str, answer: Callable[[str], str], echo: Callable[[str], None],
                 caller: str = "+15555550100") -> None:
        self.base_url = base_url.rstrip("/")
        self.validator = RequestValidator(token)
        self.answer, self.echo = answer, echo
        self.sid = "CA" + secrets.token_hex(16)
        self.params = {"CallSid": self.sid, "AccountSid": "AC" + "0" * 32, "From": caller,
                       "To": "+15555550311", "Direction": "inbound", "CallStatus": "in-progress"}

    def run(self, max_steps: int = 40) -> str:
        """Follow the call until it hangs up, is connected, or `max_steps` documents; returns how it ended."""
        url, extra = self._absolute("/voice/incoming"), {"CallStatus": "ringing"}
        for _ in range(max_steps):
            document = self._post(url, extra)
            step = self._follow(document)
            if isinstance(step, str):
                return step
            url, extra = step
        return f"stopped after {max_steps} steps"

    # -- HTTP -------------------------------------------------------------------------------
    def _absolute(self, url: str) -> str:
        return urllib.parse.urljoin(self.base_url + "/", url)

    def _post(self, url: str, extra: dict[str, str]) -> ET.Element:
        params = {**self.params, **extra}
        request = urllib.request.Request(url, data=urllib.parse.urlencode(params).encode(), method="POST")
        request.add_header("X-Twilio-Signature", self.validator.compute_signature(url, params))
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return ET.fromstring(response.read())
        except urllib.error.HTTPError as exc:
            raise click.ClickException(f"{url} answered {exc.code}: {exc.read()[:200]!r}") from None
        except urllib.error.URLError as exc:
            raise click.ClickException(f"cannot reach {url} ({exc.reason}); is `make run` serving?") from None

    # -- following TwiML -----------------------------------------------------------------------
    def _follow(self, document: ET.Element) -> tuple[str, dict[str, str]] | str:
        """Play one document; the next (url, parameters) to post, or why the call ended."""
        for verb in document:
            self._hear(verb)
            if verb.tag == "Gather":
                listens_to_speech = "speech" in (verb.get("input") or "")
                said = self.answer("speak or press" if listens_to_speech else "press")
                if said:
                    key = "Digits" if _is_keys(said) else "SpeechResult"
                    return self._absolute(verb.get("action", "")), {key: said, "Confidence": "0.9"}
            elif verb.tag == "Redirect":
                return self._absolute(verb.text or ""), {}
            elif verb.tag == "Connect":
                stream = verb.find("Stream")
                if stream is not None:
                    self._stream(stream)
                return self._absolute(verb.get("action", "")), {}
            elif verb.tag == "Dial":
                return self._dial(verb)
            elif verb.tag == "Enqueue":
                self._wait_in_queue(verb)
                return f"waiting in queue {verb.text!r} (a real agent would pick up here)"
            elif verb.tag == "Record":
                return "recording a message (ivr call does not send audio to <Record>)"
            elif verb.tag == "Hangup":
                return "the line hung up"
        return "the document ended (Twilio hangs up)"

    def _hear(self, verb: ET.Element) -> None:
        for element in verb.iter():
            if element.tag == "Say":
                self.echo(f"  line: {element.text}")
            elif element.tag == "Play":
                self.echo(f"  line: ♪ {element.text}")

    def _dial(self, dial: ET.Element) -> str:
        noun = next(iter(dial), None)
        target = (noun.text or "").strip() if noun is not None else (dial.text or "").strip()
        self.echo(f"  ☎ dialling {target}")
        if noun is not None and noun.get("url"):
            agent_leg = {**self.params, "ParentCallSid": self.sid, "Direction": "outbound-dial"}
            whisper = self._post(self._absolute(noun.get("url", "")), agent_leg)
            for say in whisper.iter("Say"):
                self.echo(f"  agent hears: {say.text}")
        return f"connected to {target}"

    def _wait_in_queue(self, enqueue: ET.Element) -> None:
        wait_url = enqueue.get("waitUrl")
        if wait_url:
            hold = self._post(self._absolute(wait_url), {"QueuePosition": "1", "AvgQueueTime": "60"})
            self._hear(hold)

    def _stream(self, stream: ET.Element) -> None:
        """Play the caller's side of a Media Stream: a spoken answer, a key, or silence."""
        from websockets.sync.client import connect

        from ivr.speech import tts

        parameters = {p.get("name", ""): p.get("value", "") for p in stream.iter("Parameter")}
        if parameters.get("prompts"):
            for key, values in json.loads(parameters["prompts"]):
                self.echo(f"  line: ♪ prompt '{key}' {values or ''}".rstrip())
        said = self.answer("speak or press")
        audio = b""
        if said and not _is_keys(said):     # rendered before connecting: the line is waiting then
            voice = "roa/es-419" if parameters.get("language") == "es" else "gmw/en-us"
            audio = parse_wav(tts.render_wav(said, voice, 150)).at_rate(8000).pcm16
        ws_url = stream.get("url", "")
        if not ws_url.startswith(("ws://", "wss://")):
            ws_url = "ws" + self.base_url[len("http"):] + "/voice/stream"
        signature = self.validator.compute_signature(ws_url, {})
        stream_sid = "MZ" + secrets.token_hex(16)
        with connect(ws_url, open_timeout=10, additional_headers={"X-Twilio-Signature": signature}) as socket:
            socket.send(wire.encode(wire.Connected()))
            socket.send(wire.encode(wire.Start(stream_sid, self.sid, self.params["AccountSid"],
                                               custom_parameters=parameters, sequence_number=1)))
            if said and _is_keys(said):
                for digit in said.replace(" ", ""):
                    socket.send(wire.encode(wire.Dtmf(stream_sid, digit)))
            _send_until_closed(socket, stream_sid, audio)


def _frames(stream_sid: str, pcm16: bytes) -> Iterator[str]:
    """The caller's audio then line silence, as Twilio's 20 ms `media` messages."""
    ulaw = pcm16_to_ulaw(pcm16) if pcm16 else b""
    for chunk in itertools.count(1):
        frame = ulaw[(chunk - 1) * wire.FRAME_BYTES:chunk * wire.FRAME_BYTES]
        yield wire.encode(wire.Media(stream_sid, frame.ljust(wire.FRAME_BYTES, SILENCE), "inbound",
                                     chunk, chunk * wire.FRAME_MS))


def _send_until_closed(socket: "ClientConnection", stream_sid: str, pcm16: bytes) -> None:
    """Send frames in real time until the line closes the stream (it has heard enough)."""
    from websockets.exceptions import ConnectionClosed

    start = time.monotonic()
    for index, message in enumerate(_frames(stream_sid, pcm16)):
        if time.monotonic() - start > STREAM_TIMEOUT_S:
            return
        try:
            socket.send(message)
            while True:                      # drain the line's prompt audio: not played here
                socket.recv(timeout=0)
        except TimeoutError:
            pass
        except ConnectionClosed:
            return
        delay = start + (index + 1) * FRAME_S - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def _is_keys(text: str) -> bool:
    return all(ch in "0123456789*#" for ch in text.replace(" ", "")) and bool(text.strip())


def register(cli: click.Group) -> None:
    @cli.command()
    @click.option("--url", default="http://127.0.0.1:5000", show_default=True, help="Where the line is served.")
    @click.option("--token", default=None, help="Auth token (default: $TWILIO_AUTH_TOKEN or make run's dev token).")
    @click.option("--from", "caller", default="+15555550100", show_default=True, help="The caller's number.")
    @click.option("--say", "script", multiple=True,
                  help="Scripted answers in order (text = speech, digits = keys, '' = silence); else asks you.")
    def call(url: str, token: str | None, caller: str, script: tuple[str, ...]) -> None:
        """Phone the line from this terminal with signed requests, as Twilio would."""
        answers = iter(script)

        def answer(kind: str) -> str:
            if script:
                said = next(answers, None)
                if said is None:
                    raise click.ClickException("the scripted answers ran out; the line is still listening")
                click.echo(f"  you ({kind}): {said}")
                return said
            return click.prompt(f"  you ({kind}; Enter = silence)", default="", show_default=False)

        secret = token or os.environ.get("TWILIO_AUTH_TOKEN") or DEV_TOKEN
        outcome = LocalCall(url, secret, answer, click.echo, caller).run()
        click.echo(f"call ended: {outcome}")
