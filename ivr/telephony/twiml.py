"""Actions → TwiML. The only place TwiML is made, through twilio's `VoiceResponse` (and `MessagingResponse` for texts).

Every step that listens to the caller goes through `listen`, which renders per capture mode:
``twilio`` (Gather speech+DTMF), ``keypad`` (Gather DTMF), ``stream`` (Connect/Stream to our
recogniser) or ``record`` (Record, recognised by /voice/recorded). Action URLs carry the step
and a counter (``n``) so a Twilio retry of the same request can be recognised and replayed.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlencode

from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import Dial, VoiceResponse

from ivr.lang import locale
from ivr.routing.actions import (Action, AfterHours, AlertNotice, Ask, Callback, Confirm, Emergency, Goodbye,
                                 Menu, Operator, Queue, ReadCase, ReportAsk, ReportOffer, Subscribe, TextCase,
                                 Transfer, Voicemail, Welcome)
from ivr.routing.state import Decision

#: speak(verb, key, language, **values) — `ivr.prompts.speak` in the app, a fake in unit tests
#: (what it returns is ignored here).
Speaker = Callable[..., object]
#: What a listening step says, in order: (prompt key, placeholder values).
PromptPlan = list[tuple[str, dict[str, Any]]]

CAPTURE_MODES = ("twilio", "keypad", "stream", "record")
GATHER_TIMEOUT_S = 5          # silence after the prompt before Twilio gives up on the caller
DIAL_TIMEOUT_S = 25           # ring time before a department counts as "no-answer"
VOICEMAIL_MAX_S = 120
TURN_RECORD_MAX_S = 15        # record capture: one answer, not a speech
MAX_HINTS = 100


@dataclass(frozen=True)
class RenderContext:
    """What rendering needs besides the decision: who, how we listen, where we are reachable."""
    call_sid: str
    speak: Speaker
    capture: str = "twilio"
    public_url: str = ""          # https://ivr.example.gov; "" → relative URLs
    hints: str = ""               # comma-separated speech hints for Gather
    #: has_audio(key, language, **values) — whether a prompt can be played over a Media Stream.
    has_audio: Callable[..., bool] | None = None
    #: Twilio <Gather language> (the call language's `locales.gather`); "" → the built-in file's.
    gather_language: str = ""

    def url(self, path: str, **query: Any) -> str:
        """Absolute URL when the public URL is known (Twilio resolves relative ones the same way)."""
        suffix = f"{path}?{urlencode(query)}" if query else path
        return f"{self.public_url.rstrip('/')}{suffix}" if self.public_url else suffix


def speech_hints(phrases: list[str] | tuple[str, ...]) -> str:
    """Gather `hints`: unique short phrases (Twilio allows ≤ 100 characters each), comma-separated."""
    seen: list[str] = []
    folded: set[str] = set()   # lower-cased `seen`, so each phrase is checked in O(1)
    for phrase in phrases:
        clean = " ".join(phrase.replace(",", " ").split())
        if clean and len(clean) <= 100 and clean.lower() not in folded:
            seen.append(clean)
            folded.add(clean.lower())
        if len(seen) >= MAX_HINTS:
            break
    return ", ".join(seen)


def dial_target(line: str) -> str:
    """A department line as Twilio dials it: SIP URIs as they are, phone numbers without spaces."""
    line = line.strip()
    return line if line.lower().startswith("sip:") else re.sub(r"[\s().-]", "", line)


def listen(response: VoiceResponse, ctx: RenderContext, step: str, n: int, language: str,
           plan: PromptPlan, *, keypad_only: bool = False) -> None:
    """Play the prompts in `plan` and capture the answer, posting it to /voice/turn?step=…&n=….

    When nothing is heard Twilio moves past the Gather; the Redirect then posts the same action
    without input, so "no input" arrives at the same place as an answer would.
    """
    action = ctx.url("/voice/turn", step=step, n=n)
    mode = "keypad" if keypad_only else ctx.capture
    if mode == "stream":
        # The stream plays the prompt itself so the caller can talk over it (barge-in) — but only
        # when every part has audio; otherwise <Say>/<Play> it first: the caller must hear it.
        streamed = ctx.has_audio is not None and all(ctx.has_audio(key, language, **values)
                                                     for key, values in plan)
        if not streamed:
            _say_plan(response, ctx, plan, language)
        ws_base = re.sub(r"^http", "ws", ctx.public_url.rstrip("/")) if ctx.public_url else ""
        with response.connect(action=action, method="POST") as connect:
            with connect.stream(url=f"{ws_base}/voice/stream") as stream:
                stream.parameter(name="step", value=step)
                stream.parameter(name="n", value=str(n))
                stream.parameter(name="language", value=language)
                if streamed:
                    stream.parameter(name="prompts", value=json.dumps(plan, separators=(",", ":")))
        return
    if mode == "record":
        _say_plan(response, ctx, plan, language)
        # An empty DTMF Gather first: a key press (0 = operator) is taken before recording starts.
        response.gather(input="dtmf", num_digits=1, timeout=1, action=action, method="POST")
        response.record(action=ctx.url("/voice/recorded", step=step, n=n), method="POST",
                        max_length=TURN_RECORD_MAX_S, timeout=2, play_beep=False, trim="trim-silence",
                        finish_on_key="#")
        response.redirect(action, method="POST")
        return
    kwargs: dict[str, Any] = {"input": "dtmf", "num_digits": 1, "timeout": GATHER_TIMEOUT_S,
                              "action": action, "method": "POST"}
    if mode != "keypad":
        kwargs.update(input="dtmf speech", speech_timeout="auto",
                      language=ctx.gather_language or locale(language, "gather") or "en-US")
        if ctx.hints:
            kwargs["hints"] = ctx.hints
    with response.gather(**kwargs) as gather:
        _say_plan(gather, ctx, plan, language)
    response.redirect(action, method="POST")


def _say_plan(verb: Any, ctx: RenderContext, plan: PromptPlan, language: str) -> None:
    for key, values in plan:
        ctx.speak(verb, key, language, **values)


def _dial(response: VoiceResponse, ctx: RenderContext, line: str, n: int, whisper: bool = True) -> None:
    target = dial_target(line)
    whisper_url = ctx.url("/voice/whisper", call=ctx.call_sid) if whisper else None
    dial: Dial = response.dial(action=ctx.url("/voice/dial-done", n=n), method="POST", timeout=DIAL_TIMEOUT_S)
    if target.lower().startswith("sip:"):
        dial.sip(target, url=whisper_url)
    else:
        dial.number(target, url=whisper_url)


def _enqueue(response: VoiceResponse, ctx: RenderContext, queue: str, n: int, language: str) -> None:
    response.enqueue(queue, action=ctx.url("/voice/queue-done", n=n), method="POST",
                     wait_url=ctx.url("/voice/queue-wait", lang=language), wait_url_method="POST")


def _record_voicemail(response: VoiceResponse, ctx: RenderContext, department: str, n: int, language: str) -> None:
    ctx.speak(response, "voicemail", language)
    response.record(action=ctx.url("/voice/voicemail-done", n=n), method="POST", max_length=VOICEMAIL_MAX_S,
                    finish_on_key="#", play_beep=True, trim="trim-silence",
                    recording_status_callback=ctx.url("/voice/recording-status", department=department),
                    recording_status_callback_method="POST")
    # Reached only when nothing was recorded (Twilio skips the action then).
    ctx.speak(response, "goodbye", language)
    response.hangup()


def prompt_plan(action: Action) -> PromptPlan:
    """What a listening action says, in order (empty for actions that do not listen)."""
    plan: PromptPlan = []
    if getattr(action, "reprompt", None):
        plan.append((action.reprompt, {}))
    if isinstance(action, Welcome):
        plan += [("welcome", {"advisory": action.advisory}), ("choose_language", {})]
    elif isinstance(action, Ask):
        plan.append((action.prompt, {}))
    elif isinstance(action, Confirm):
        plan.append(("confirm", {"description": action.description}))
    elif isinstance(action, Menu):
        plan.append(("menu_intro", {}))
        plan += [("menu_option", {"label": label, "digit": digit}) for digit, label in action.options]
        plan.append(("menu_footer", {}))
    elif (isinstance(action, Callback) and not action.done) or \
            (isinstance(action, AfterHours) and action.then == "callback"):
        plan.append(("callback_offer", {}))
    elif isinstance(action, ReportOffer):
        plan += [(f"report_offer_{offer}", {"digit": str(key)}) for key, offer in enumerate(action.offers, start=1)]
    elif isinstance(action, ReportAsk):
        plan.append((f"report_{action.what}", {}))
        plan += [("menu_option", {"label": label, "digit": digit}) for digit, label in action.choices]
    elif isinstance(action, ReadCase):
        if action.first:
            plan.append(("report_filed", {"service": action.service}))
        plan += [("case_number", {"case": action.spoken}), ("case_repeat", {})]
        plan += [("case_text_offer", {})] if action.can_text else []
        plan.append(("case_finish", {}))
    elif isinstance(action, AlertNotice):
        plan += [("alert", {"message": action.text}), ("alert_something_else", {})]
        plan += [("alert_updates", {})] if action.can_subscribe else []
    return plan


def render(decision: Decision, ctx: RenderContext) -> VoiceResponse:
    """The TwiML for `decision.action` in the caller's language, URLs numbered `decision.state.seq`."""
    action, state = decision.action, decision.state
    lang, n, speak = state.language, state.seq, ctx.speak
    response = VoiceResponse()
    if isinstance(action, (Welcome, Ask)):
        listen(response, ctx, state.step, n, lang, prompt_plan(action))
    elif isinstance(action, (Confirm, ReportAsk, ReadCase, AlertNotice)):
        listen(response, ctx, state.step, n, lang, prompt_plan(action))
    elif isinstance(action, ReportOffer):
        if action.hours:
            speak(response, "after_hours", lang, department=action.name, hours=action.hours)
        listen(response, ctx, state.step, n, lang, prompt_plan(action))
    elif isinstance(action, (TextCase, Subscribe)):
        if isinstance(action, TextCase):
            speak(response, "case_texted", lang)
        else:
            speak(response, "alert_subscribed", lang, topic=action.name)
        speak(response, "goodbye", lang)
        response.hangup()
    elif isinstance(action, Menu):
        listen(response, ctx, state.step, n, lang, prompt_plan(action), keypad_only=True)
    elif isinstance(action, Transfer):
        speak(response, "transferring", lang, department=action.name)
        _dial(response, ctx, action.line, n)
    elif isinstance(action, Operator):
        speak(response, "operator", lang)
        if action.queue:
            _enqueue(response, ctx, action.queue, n, lang)
        else:
            _dial(response, ctx, action.line, n)
    elif isinstance(action, Queue):
        speak(response, "queue_welcome", lang, department=action.name)
        _enqueue(response, ctx, action.queue, n, lang)
    elif isinstance(action, Voicemail):
        _record_voicemail(response, ctx, action.department, n, lang)
    elif isinstance(action, AfterHours):
        speak(response, "after_hours", lang, department=action.name, hours=action.hours)
        if action.then == "callback":
            listen(response, ctx, "callback", n, lang, prompt_plan(action), keypad_only=True)
        elif action.then == "voicemail":
            _record_voicemail(response, ctx, action.department, n, lang)
        else:
            speak(response, "goodbye", lang)
            response.hangup()
    elif isinstance(action, Callback):
        if action.done:
            speak(response, "callback_done", lang)
            speak(response, "goodbye", lang)
            response.hangup()
        else:
            listen(response, ctx, "callback", n, lang, prompt_plan(action), keypad_only=True)
    elif isinstance(action, Emergency):
        speak(response, "emergency_advisory", lang, advisory=action.advisory)
        if action.dial:
            speak(response, action.announce or "emergency_transfer", lang)
            _dial(response, ctx, action.dial, n, whisper=False)
        else:
            speak(response, "emergency_advisory", lang, advisory=action.advisory)
            response.hangup()
    elif isinstance(action, Goodbye):
        if action.prompt != "goodbye":
            speak(response, action.prompt, lang)
        speak(response, "goodbye", lang)
        response.hangup()
    else:
        raise TypeError(f"no TwiML for action {type(action).__name__}")
    return response


def estimated_minutes(avg_queue_seconds: float | None, position: int) -> int:
    """Whole minutes to announce: the queue's average wait, at least one minute."""
    if avg_queue_seconds is None or avg_queue_seconds <= 0:
        return max(1, position)  # no history yet: a minute per caller ahead is the honest guess
    return max(1, math.ceil(avg_queue_seconds / 60))


def render_queue_wait(ctx: RenderContext, language: str, position: int, minutes: int) -> VoiceResponse:
    """Hold TwiML (Enqueue waitUrl): position and wait, then the offer to leave a message.

    Pressing 1 posts back here with `choice=1`, answered by `render_leave_queue`; otherwise the
    Redirect re-fetches this document, so the announcement repeats periodically.
    """
    response = VoiceResponse()
    ctx.speak(response, "queue_position", language, position=position, minutes=minutes)
    with response.gather(input="dtmf", num_digits=1, timeout=GATHER_TIMEOUT_S * 3,
                         action=ctx.url("/voice/queue-wait", lang=language, choice=1), method="POST") as gather:
        ctx.speak(gather, "queue_offer", language)
    response.redirect(ctx.url("/voice/queue-wait", lang=language), method="POST")
    return response


def render_leave_queue() -> VoiceResponse:
    """<Leave>: the caller exits the queue; Twilio then posts the Enqueue action (QueueResult=leave)."""
    response = VoiceResponse()
    response.leave()
    return response


def render_whisper(text: str, say_language: str = "en-US") -> VoiceResponse:
    """What the agent hears before the caller is connected (in the agent's language)."""
    response = VoiceResponse()
    response.say(text, language=say_language)
    return response


def render_to_human(line: str | None, words: str, language: str = "en-US") -> VoiceResponse:
    """The safe answer when anything failed: an apology, then the operator line (no action URL,
    so nothing further depends on our server); without a line, the apology and a hang-up."""
    response = VoiceResponse()
    response.say(words, language=language)
    if line:
        target = dial_target(line)
        dial = response.dial(timeout=DIAL_TIMEOUT_S)
        if target.lower().startswith("sip:"):
            dial.sip(target)
        else:
            dial.number(target)
    else:
        response.hangup()
    return response


def render_empty() -> VoiceResponse:
    """An empty <Response/> (status callbacks, a hung-up queue caller)."""
    return VoiceResponse()


#: Twilio refuses a <Message> body over 1600 characters; ours stay far below, this is the backstop.
MAX_MESSAGE = 1600


def render_message(text: str | None) -> MessagingResponse:
    """The answer to a text: one <Message>, or an empty <Response/> when nothing is to be sent
    (an opted-out number, a retry already answered)."""
    response = MessagingResponse()
    if text and text.strip():
        body = text.strip()
        response.message(body if len(body) <= MAX_MESSAGE else body[:MAX_MESSAGE - 1] + "…")
    return response
