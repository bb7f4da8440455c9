"""`/voice/recorded`: the recording path, for hosts that cannot take websockets (IVR_CAPTURE=record).

Twilio `<Record>`s the caller's answer and posts `RecordingUrl` here. We download it (https from
IVR_RECORDING_HOST only; Twilio basic auth: TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN; bounded size
and time), recognise it with the
call's language engine, and hand the turn to `respond_to_turn`, the same decision code every
other step uses. Any failure to fetch or decode becomes an empty turn (no input), so the caller
is reprompted or offered the menu — never a 5xx.
"""
from __future__ import annotations

import base64
import logging
import re
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request

from flask import Blueprint, Response, current_app, request

from ivr import metrics
from ivr.routing.state import Turn
from ivr.rules_source import current_rules
from ivr.speech.audio import AudioError, parse_wav
from ivr.speech.engines.base import EngineUnavailable
from ivr.speech.service import speech_service
from ivr.telephony.security import twilio_signed
from ivr.web.media import open_recognizer, step_grammar, watched_emergency
from ivr.web.voice import conversation
from ivr.web.voice.rescue import safe_webhook

log = logging.getLogger(__name__)

bp = Blueprint("recording", __name__)

#: 8 kHz 16-bit mono is 16 kB/s: 4 MB is about four minutes, far longer than any answer.
MAX_RECORDING_BYTES = 4 * 1024 * 1024
DOWNLOAD_TIMEOUT_S = 5.0
#: Twilio can answer 404 for a moment right after the recording ends; retry once after this.
NOT_READY_RETRY_S = 0.5
#: Digits that can end a <Record> (finishOnKey) and then mean a keypad choice.
KEYPAD = set("0123456789")


class RecordingUnavailable(Exception):
    """The recording could not be fetched or read; the message says why (for the log)."""


@bp.post("/voice/recorded")
@twilio_signed
@safe_webhook
def recorded() -> Response:
    """Download → recognise → decide. Always answers TwiML through `respond_to_turn`."""
    call_sid = conversation.call_sid()
    # A Twilio retry is answered from storage before anything is downloaded or recognised again;
    # the call's state (the recording's language) comes back in the same query.
    replay = conversation.recall(call_sid)
    if replay:
        return replay
    conversation.end_reads()   # nothing is held while we download and recognise
    url = request.form.get("RecordingUrl", "")
    digits = request.form.get("Digits", "")
    digits = digits if digits and set(digits) <= KEYPAD else None
    speech, confidence, watched, recording = None, None, None, None
    if url:
        try:
            language = _call_language(call_sid)
            text, confidence, watched = transcribe(fetch_recording(url), language,
                                                   request.args.get("step", ""))
            speech = text or None
            recording = (url, _seconds(request.form.get("RecordingDuration")))
        except RecordingUnavailable as exc:
            log.warning("call %s: recording unusable, treating as no input: %s", call_sid, exc)
    # The recording is kept with the call among the turn's writes (after deciding and rendering).
    return conversation.respond_to_turn(call_sid, Turn(speech=speech, digits=digits,
                                          asr_confidence=confidence if speech else None,
                                          emergency_heard=watched), recording=recording)


def fetch_recording(url: str, *, max_bytes: int | None = None, timeout: float = DOWNLOAD_TIMEOUT_S) -> bytes:
    """The recording's bytes (WAV: Twilio's default format), with the account's basic auth.

    Only ``https://`` URLs on the recording host (IVR_RECORDING_HOST, default api.twilio.com) are
    fetched, and only that host ever gets the account's credentials: a redirect is followed by
    hand, to https only, and without the credentials when it leaves the host (a pre-signed media
    URL needs none). Anything else is refused before a byte is sent.
    """
    max_bytes = max_bytes or MAX_RECORDING_BYTES
    allowed = _recording_host()
    if not _on_host(url, allowed):
        raise RecordingUnavailable(f"RecordingUrl is not https://{allowed}/…: refused")
    sid, token = current_app.config.get("TWILIO_ACCOUNT_SID"), current_app.config.get("TWILIO_AUTH_TOKEN")
    credentials = "Basic " + base64.b64encode(f"{sid}:{token}".encode()).decode() if sid and token else None
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ssl.create_default_context()),
                                         _NoRedirects())
    deadline = time.monotonic() + timeout
    retried, redirects = False, 0
    while True:
        headers = {"User-Agent": "city-ivr"}
        if credentials and _on_host(url, allowed):
            headers["Authorization"] = credentials
        try:
            with opener.open(urllib.request.Request(url, headers=headers),
                             timeout=max(0.1, deadline - time.monotonic())) as reply:
                body = reply.read(max_bytes + 1)
            if len(body) > max_bytes:
                raise RecordingUnavailable(f"recording larger than {max_bytes} bytes")
            return body
        except urllib.error.HTTPError as exc:
            location = exc.headers.get("Location") if exc.code in _REDIRECTS else None
            if location and redirects < MAX_REDIRECTS:
                url, redirects = urllib.parse.urljoin(url, location), redirects + 1
                if urllib.parse.urlsplit(url).scheme != "https":
                    raise RecordingUnavailable("recording redirected to a non-https URL: refused") from exc
                continue
            if exc.code == 404 and not retried and deadline - time.monotonic() > NOT_READY_RETRY_S:
                retried = True
                time.sleep(NOT_READY_RETRY_S)
                continue
            raise RecordingUnavailable(f"download answered HTTP {exc.code}") from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise RecordingUnavailable(f"download failed: {exc}") from exc


#: Redirect statuses followed by hand (see fetch_recording), at most MAX_REDIRECTS times.
_REDIRECTS = {301, 302, 303, 307, 308}
MAX_REDIRECTS = 3


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """urllib would follow redirects itself, copying the Authorization header to any host."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def delete_recording(url: str, *, timeout: float = DOWNLOAD_TIMEOUT_S) -> bool | None:
    """Delete the recording at Twilio (retention). True: gone (deleted, or already gone);
    False: not now (network, 5xx — try again later); None: cannot be deleted by us (no
    credentials, or not a recording on the recording host) — forget our reference only.

    The same rules as `fetch_recording`: https, the recording host only, no redirects followed.
    """
    sid, token = current_app.config.get("TWILIO_ACCOUNT_SID"), current_app.config.get("TWILIO_AUTH_TOKEN")
    if not (sid and token) or not _on_host(url, _recording_host()):
        return None
    base = re.sub(r"\.(wav|mp3|json)$", "", url.split("?", 1)[0])
    request = urllib.request.Request(base + ".json", method="DELETE", headers={
        "User-Agent": "city-ivr",
        "Authorization": "Basic " + base64.b64encode(f"{sid}:{token}".encode()).decode()})
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ssl.create_default_context()),
                                         _NoRedirects())
    try:
        with opener.open(request, timeout=timeout) as reply:
            return 200 <= reply.status < 300
    except urllib.error.HTTPError as exc:
        return True if exc.code == 404 else False
    except (urllib.error.URLError, OSError, ValueError) as exc:
        log.warning("recording delete failed, will retry: %s", exc)
        return False


def _recording_host() -> str:
    return str(current_app.config.get("IVR_RECORDING_HOST") or "api.twilio.com").strip().lower()


def _on_host(url: str, host: str) -> bool:
    """True for an https URL whose host (and port, when the setting names one) is `host`."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    if parts.scheme != "https" or not parts.hostname or parts.username or parts.password:
        return False
    want_host, _, want_port = host.partition(":")
    return parts.hostname.lower() == want_host and (port or 443) == int(want_port or 443)


def transcribe(wav: bytes, language: str, step: str = "") -> tuple[str, float | None, str | None]:
    """Recognise a WAV recording with the language's engine and the step's grammar.

    Returns (text, confidence, why the emergency watch heard an emergency or None).
    """
    try:
        audio = parse_wav(wav, "recording")
    except AudioError as exc:
        raise RecordingUnavailable(str(exc)) from exc
    try:
        engine = speech_service().engine_for(language)
        if engine is None:
            raise RecordingUnavailable(f"no recogniser for {language!r} (keypad only)")
        recognizer = open_recognizer(engine, audio.sample_rate, step_grammar(step, language))
        chunk = audio.sample_rate // 5 * 2      # 200 ms of PCM16 per chunk
        with metrics.decode_timer(engine):      # the whole recording: the caller waits for all of it
            for i in range(0, len(audio.pcm16), chunk):
                recognizer.accept(audio.pcm16[i:i + chunk])
            result = recognizer.finish()
    except (EngineUnavailable, RuntimeError) as exc:
        raise RecordingUnavailable(f"recogniser failed: {exc}") from exc
    text = " ".join(result.text.split())
    return text, result.confidence, watched_emergency(result, language, text)


def _call_language(call_sid: str) -> str:
    """The language the call is in (its state as `recall` read it), else the rules' default."""
    state = conversation.stored_state(call_sid)
    return state.language if state else current_rules().default_language


def _seconds(duration: str | None) -> float | None:
    """Twilio's RecordingDuration as seconds (None when missing or not a number)."""
    try:
        return float(duration) if duration else None
    except ValueError:
        return None
