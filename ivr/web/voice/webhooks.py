"""The voice webhooks Twilio calls. `/voice/incoming` starts a call; every later step is reached only by
following the action/url attributes of the TwiML we return, exactly as Twilio does.

Each view is signed (`@twilio_signed`, 403 otherwise) and safe (`@safe_webhook`: any failure
answers TwiML that reaches a person). Effects are committed once, together with the answer,
so a Twilio retry replays the answer instead of repeating the effects.
"""
from __future__ import annotations

import dataclasses
import logging
import re
from typing import Any

from flask import Blueprint, Response, current_app, g, request

from ivr import metrics, prompts
from ivr.routing.actions import Goodbye, Welcome
from ivr.routing.decide import after_dial, after_queue
from ivr.routing.state import CallState, Decision
from ivr.store import calls, db
from ivr.store.privacy import mask_number
from ivr.telephony.security import twilio_signed
from ivr.telephony.twiml import (RenderContext, estimated_minutes, render_empty, render_leave_queue,
                                 render_queue_wait, render_whisper)
from ivr.web.console.views import note_bridged
from ivr.web.voice.conversation import (apply, call_sid, finish, has_gather_input, kept_text, now, parse_turn,
                                        recall, respond_to_turn, rules, stored_state, xml)
from ivr.web.voice.rescue import safe_webhook, to_human_body

log = logging.getLogger(__name__)
bp = Blueprint("voice", __name__, url_prefix="/voice")
METHODS = ["GET", "POST"]   # Twilio may be configured to use either
_DEPARTMENT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: The empty <Response/> the status callbacks answer, serialised once (it never changes).
EMPTY = str(render_empty())


def _state(sid: str) -> CallState:
    """The stored state of `sid`; a call we never saw is created so the caller is still served."""
    state = stored_state(sid)
    if state is None:
        calls.ensure_call(db.session(), sid, request.values.get("From", ""), request.values.get("To", ""))
        state = CallState(language=rules().default_language)
    g.ivr_language = state.language
    return state


@bp.route("/incoming", methods=METHODS)
@twilio_signed
@safe_webhook
def incoming() -> Response:
    """A call comes in: greet with the emergency advisory and offer the language choice."""
    sid = call_sid()
    replay = recall(sid)
    if replay:
        return replay
    metrics.CALLS.inc()
    current = rules()
    log.info("call %s from %s", sid, mask_number(request.values.get("From")))
    language = current.default_language
    state = CallState(language=language)
    advisory = current.emergency.advisory.get(language, "")
    return apply(sid, state, Decision(Welcome(advisory), state, "call started"), event="incoming",
                 new_call=(request.values.get("From", ""), request.values.get("To", "")))


@bp.route("/turn", methods=METHODS)
@twilio_signed
@safe_webhook
def turn() -> Response:
    """Every Gather/Connect/Record action: the caller's answer at the step named in the URL."""
    sid = call_sid()
    replay = recall(sid)
    if replay:
        return replay
    answer = parse_turn()
    if not has_gather_input():
        # A media stream parks what it recognised before Twilio fetches this Connect action; it
        # is read now and cleared with the call's state, among the webhook's writes.
        parked = calls.pending_turn(db.session(), sid)
        if parked is not None:
            return respond_to_turn(sid, parked, took_pending_turn=True)
    return respond_to_turn(sid, answer)


@bp.route("/dial-done", methods=METHODS)
@twilio_signed
@safe_webhook
def dial_done() -> Response:
    """A <Dial> ended: answered → goodbye; busy/no-answer/failed → the department's policy."""
    sid = call_sid()
    replay = recall(sid)
    if replay:
        return replay
    state = _state(sid)
    status = (request.values.get("DialCallStatus") or "failed").strip()[:32]
    decision = after_dial(state, status, now(), rules())
    dial = {"status": status, "department": state.department, "duration_s": request.values.get("DialCallDuration")}
    return apply(sid, state, decision, event=f"dial {status}", first=[("dial", dial)])


@bp.route("/queue-done", methods=METHODS)
@twilio_signed
@safe_webhook
def queue_done() -> Response:
    """The caller left the queue: bridged/hung up → done; left (pressed 1) or error → a message."""
    sid = call_sid()
    replay = recall(sid)
    if replay:
        return replay
    state = _state(sid)
    result = (request.values.get("QueueResult") or "error").strip()[:32]
    queue = {"result": result, "queue_time_s": request.values.get("QueueTime")}
    if result == "hangup":
        calls.add_event(db.session(), sid, "queue", queue)
        return finish(sid, EMPTY)
    return apply(sid, state, after_queue(state, result, rules()), event=f"queue {result}", first=[("queue", queue)])


def _leave_queue() -> str:
    # No <Dial> is allowed in hold TwiML: leaving sends the caller to /voice/queue-done instead.
    return str(render_leave_queue())


@bp.route("/queue-wait", methods=METHODS)
@twilio_signed
@safe_webhook(rescue=_leave_queue)
def queue_wait() -> Response:
    """Hold TwiML: position and estimated wait, and the offer to press 1 for a message."""
    call_sid()
    current = rules()
    language = request.args.get("lang", "")
    language = language if language in current.languages else current.default_language
    if request.args.get("choice") == "1" and (request.values.get("Digits") or "").strip() == "1":
        return xml(_leave_queue())
    position = max(_int(request.values.get("QueuePosition"), default=1), 1)
    minutes = estimated_minutes(_int(request.values.get("AvgQueueTime"), default=0), position)
    ctx = RenderContext(call_sid="", speak=prompts.speak, public_url=current_app.config.get("IVR_PUBLIC_URL", ""))

    def make(kept: RenderContext) -> str:
        return str(render_queue_wait(kept, language, position, minutes))

    if not ctx.public_url:   # the audio URLs follow the request's host: not the same for everyone
        return xml(make(ctx))
    # Every caller on hold hears the same few documents: kept, like the conversation's (~90 us).
    return xml(kept_text(("queue-wait", language, position, minutes, ctx.public_url), ctx, make))


@bp.route("/voicemail-done", methods=METHODS)
@twilio_signed
@safe_webhook
def voicemail_done() -> Response:
    """The caller finished a message (stored by /voice/recording-status): thank and hang up."""
    sid = call_sid()
    replay = recall(sid)
    if replay:
        return replay
    state = _state(sid)
    done = dataclasses.replace(state, step="done")
    return apply(sid, state, Decision(Goodbye("voicemail_done"), done, "message recorded"), event="voicemail")


@bp.route("/recording-status", methods=METHODS)
@twilio_signed
@safe_webhook(rescue=lambda: EMPTY)
def recording_status() -> Response:
    """Recording status callback: a completed voicemail becomes a stored Message, once."""
    sid = call_sid()
    recording = (request.values.get("RecordingSid") or "")[:64]
    replay = recall(sid, recording)
    if replay:
        return replay
    department = request.args.get("department", "")
    url = request.values.get("RecordingUrl") or ""
    if request.values.get("RecordingStatus") == "completed" and url and _DEPARTMENT.match(department):
        s = db.session()
        duration = _int(request.values.get("RecordingDuration"), default=0)
        calls.add_recording(s, sid, url, "voicemail", duration)
        calls.add_message(s, sid, department, "voicemail", url)
    else:
        calls.add_event(db.session(), sid, "recording", {"status": request.values.get("RecordingStatus"),
                                                         "department": department[:64]})
    return finish(sid, EMPTY, recording)


@bp.route("/whisper", methods=METHODS)
@twilio_signed
@safe_webhook(rescue=lambda: EMPTY)
def whisper() -> Response:
    """What the agent hears before being bridged: department, what was said, language, caller."""
    parent = request.args.get("call", "")
    if not re.match(r"^[A-Za-z0-9_-]{1,64}$", parent):
        return xml(EMPTY)
    s = db.session()
    # Read first (the call's state and number at once: note_bridged reuses what was read), then
    # the one write.
    stored, caller = calls.state_and_caller(s, parent)
    # The agent answered: screen pop on their console.
    note_bridged(parent, request.values.get("To", ""), known=stored is not None)
    state = stored or CallState()
    current = rules()
    department = current.departments.get(state.department or "")
    # Agents speak the line's first language; the words come from its language file.
    agent = current.language(current.default_language)
    words = agent.whisper
    template = (department.whisper if department else "") or words.text
    caller_language = current.language(state.language) if state.language in current.languages else None
    values = {
        "department": department.name.get(agent.code, department.id) if department else words.no_department,
        "heard": state.heard or words.keypad_heard,
        "confidence": words.keypad_confidence if state.confidence is None
                      else words.percent.format(percent=round(state.confidence * 100)),
        "language": caller_language.name_in(agent.code) if caller_language else state.language,
        "caller": prompts.spell_digits(caller, agent.phone_groups) or words.unknown_caller,
    }
    text = template.format_map(_Blank(values))
    if "{caller}" not in template:
        text += " " + words.caller.format(caller=values["caller"])
    return xml(str(render_whisper(text, agent.locales["say"])))


@bp.route("/status", methods=METHODS)
@twilio_signed
@safe_webhook(rescue=lambda: EMPTY)
def status() -> Response:
    """Call status callback: record the final status (a call with no outcome was abandoned)."""
    sid = call_sid()
    call_status = (request.values.get("CallStatus") or "").strip()[:32]
    replay = recall(sid, call_status)
    if replay:
        return replay
    if call_status:
        calls.end_call(db.session(), sid, call_status, _int(request.values.get("CallDuration"), default=None))
    return finish(sid, EMPTY, call_status)


@bp.route("/fallback", methods=METHODS)
@twilio_signed
@safe_webhook
def fallback() -> Response:
    """Twilio's Fallback URL (our primary URL failed): reach a person, touching no database."""
    log.error("Twilio fallback for call %s: error %s at %s", request.values.get("CallSid", "?"),
              (request.values.get("ErrorCode") or "?")[:16], (request.values.get("ErrorUrl") or "?")[:200])
    return xml(to_human_body())


class _Blank(dict):  # type: ignore[type-arg]
    """format_map values where an unknown placeholder reads as nothing rather than failing."""

    def __missing__(self, key: str) -> str:
        return ""


def _int(raw: Any, default: Any) -> Any:
    try:
        return int(float(raw))
    except (TypeError, ValueError):
        return default
