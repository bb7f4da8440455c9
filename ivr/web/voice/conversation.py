"""The conversation loop shared by every voice edge: parse → classify → decide → store → render.

`respond_to_turn(call_sid, turn)` is the public entry for other edges (media stream, recorded
turns). Twilio retries are answered once: `recall()` before any effect, and `finish()` stores
the rendered TwiML together with the effects in one commit (`replies.remember_response`).
"""
from __future__ import annotations

import dataclasses
import re
from datetime import datetime, timezone
from typing import Any, Callable, Mapping, Sequence

from flask import Response, abort, current_app, g, request

from ivr import metrics, prompts
from ivr import rules_source
from ivr.routing.actions import Ask, Callback
from ivr.routing.classify import Classification
from ivr.routing.decide import CLASSIFIED_STEPS, decide
from ivr.routing.state import CallState, Decision, Turn
from ivr.routing.menu import show_menu
from ivr.routing.rules import Rules
from ivr.speech import service as speech
from ivr.store import calls, db, replies
from ivr.telephony.twiml import CAPTURE_MODES, RenderContext, prompt_plan, render, speech_hints
from ivr.web.voice import effects

MAX_SPEECH_CHARS = 500      # a caller's answer is a sentence; anything longer is cut, not refused
_DIGITS = re.compile(r"^[0-9*#]{1,32}$")
_SID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: How a decision's action kind is recorded as the call's outcome so far.
OUTCOMES = {"transfer": "transferred", "queue": "queued", "operator": "operator", "voicemail": "voicemail",
            "after_hours": "after_hours", "emergency": "emergency",
            # The caller heard an active alert; if they hang up now, the alert answered the call.
            "alert": "alert_heard"}


def xml(body: str) -> Response:
    """A TwiML response with the content type Twilio expects."""
    return Response(body, status=200, mimetype="text/xml")


def now() -> datetime:
    """The current instant; tests inject `IVR_CLOCK` (a callable) to visit holidays and nights.

    Only a callable counts: an IVR_CLOCK string from the environment must not stop the clock.
    """
    clock = current_app.config.get("IVR_CLOCK")
    return clock() if callable(clock) else datetime.now(timezone.utc)


def call_sid() -> str:
    """The request's CallSid, or 400: every voice webhook belongs to a call."""
    sid = (request.values.get("CallSid") or "").strip()
    if not _SID.match(sid):
        abort(400, description="CallSid is missing or malformed; Twilio always sends it")
    return sid


def parse_turn() -> Turn:
    """The caller's answer from Gather parameters (400 for keypad input no phone can send)."""
    digits = request.values.get("Digits")
    if digits is not None:
        digits = digits.strip() or None
        if digits is not None and not _DIGITS.match(digits):
            abort(400, description="Digits may only contain 0-9, * and # (at most 32)")
    speech = (request.values.get("SpeechResult") or "").strip()[:MAX_SPEECH_CHARS] or None
    confidence: float | None = None
    try:
        raw = request.values.get("Confidence")
        confidence = float(raw) if raw not in (None, "") else None
    except ValueError:
        confidence = None
    if confidence is not None and not 0.0 <= confidence <= 1.0:
        confidence = None
    return Turn(speech=speech, digits=digits, asr_confidence=confidence if speech else None)


def has_gather_input() -> bool:
    """True when Twilio posted an answer (as opposed to the no-input Redirect or a stream end)."""
    return any(request.values.get(k) for k in ("Digits", "SpeechResult"))


def request_keys(sid: str, extra: str = "") -> list[str]:
    """Idempotency keys of this request: CallSid + path + step counter (+ `extra`, e.g. the
    RecordingSid), and Twilio's I-Twilio-Idempotency-Token when sent.

    Worked out once per request: `recall` and `finish` both need them."""
    known = g.get("ivr_request_keys")
    if known is not None and known[0] == (sid, extra):
        return known[1]
    keys = [f"{sid}:{request.path}:{request.args.get('n', '')}:{request.args.get('step', '')}:{extra}"]
    token = request.headers.get("I-Twilio-Idempotency-Token")
    if token:
        keys.append(f"token:{token[:200]}")
    g.ivr_request_keys = ((sid, extra), keys)
    return keys


def recall(sid: str, extra: str = "") -> Response | None:
    """The answer already given to this request (a Twilio retry), if any.

    The call's stored state comes back in the same round trip and is kept for `stored_state`.
    """
    body, state = calls.recall_with_state(db.session(), request_keys(sid, extra), sid)
    g.ivr_stored_state = (sid, state)
    return xml(body) if body is not None else None


def end_reads() -> None:
    """End the transaction `recall`'s read began, before waiting seconds on the network or a
    recogniser: on PostgreSQL it would otherwise hold a pooled connection idle in a transaction
    (and its snapshot) for as long as the download and recognition take. What was read is kept
    (`stored_state`); the webhook's writes begin a transaction of their own."""
    db.session().commit()


def stored_state(sid: str) -> CallState | None:
    """The state of call `sid` as `recall` read it for this request, else read now (the recording
    path asks twice: for the recording's language, then to decide)."""
    loaded = g.get("ivr_stored_state")
    if loaded is not None and loaded[0] == sid:
        return loaded[1]
    return calls.load_state(db.session(), sid)


def finish(sid: str, body: str, extra: str = "") -> Response:
    """Commit this request's effects with its answer; a concurrent duplicate's answer wins."""
    s = db.session()
    keys = request_keys(sid, extra)
    return xml(replies.remember_response(s, keys[0], body, also=keys[1:]))


def rules() -> Rules:
    """The last good routing rules."""
    return rules_source.current_rules()


def capture_mode(language: str) -> str:
    """How this language is listened to (the speech service decides)."""
    mode = speech.capture_mode(language)
    return mode if mode in CAPTURE_MODES else "twilio"


#: Which hints a listening step gets: the intents' words unless listed here.
_HINT_KINDS = {"confirm": "confirm", "report_confirm": "confirm", "welcome": "welcome",
               "report_location": "location", "after_hours": "after_hours", "report_done": "report_done",
               "alert": "alert"}
#: The spoken choices (the language files' `choices:`) each choice step listens for.
_CHOICES = {"after_hours": ("report", "voicemail", "callback"), "report_done": ("repeat", "text", "finish"),
            "alert": ("something_else", "updates")}
#: hints_for results per (id(rules), language, kind); the Rules object is kept with each entry
#: so a recycled id() of a dropped rules version can never serve its hints.
_HINTS: dict[tuple[int, str, str], tuple[Rules, str]] = {}
_HINTS_MAX = 64    # a few languages × 3 kinds × a couple of live rules versions


def hints_for(current: Rules, language: str, step: str) -> str:
    """Speech hints: yes/no when confirming; language names and the rules' phrases otherwise.

    They depend only on the rules version, the language and the kind of step, so they are
    computed once per rules version (de-duplicating ~1,000 phrases cost ~1 ms per webhook).
    """
    kind = _HINT_KINDS.get(step, "other")
    cache_key = (id(current), language, kind)
    cached = _HINTS.get(cache_key)
    if cached is not None and cached[0] is current:
        return cached[1]
    # The words come from the language files (ivr/lang/<code>.yaml) of the languages offered.
    offered = [current.language(code) for code in current.languages]
    if kind == "location":
        hints = ""   # an address: any words at all
    elif kind in _CHOICES:
        caller = current.language(language) if language in current.languages else offered[0]
        hints = speech_hints([p for choice in _CHOICES[kind] for lang in (caller, *offered)
                              for p in lang.choices.get(choice, ())])
    elif kind == "confirm":
        # Each language's plainest "yes" and "no" first, then the other ways of saying them.
        plain = [w for lang in offered for w in (*lang.yes.words[:1], *lang.no.words[:1])]
        hints = speech_hints(plain + [w for lang in offered for w in (*lang.yes.words[1:], *lang.no.words[1:])])
    else:
        names = [name for lang in offered for name in lang.names.values()]
        phrases: list[str] = names if kind == "welcome" else []
        phrases += list(current.emergency.phrases.get(language, ()))[:30]
        for intent in current.intents:
            phrases += list(intent.keywords.get(language, ()))
        hints = speech_hints(phrases)
    if len(_HINTS) >= _HINTS_MAX:
        _HINTS.clear()   # rules were reloaded many times: start over rather than grow
    _HINTS[cache_key] = (current, hints)
    return hints


#: TwiML text already rendered (`kept_text`), by everything rendering reads besides the prompt
#: audio, e.g. (action, step, seq, language, capture, public URL, hints, gather locale) for a
#: decision → (the catalogue it was spoken from, the text, the cache names of the audio files it plays).
_TWIML: dict[tuple[Any, ...], tuple[Any, str, tuple[str, ...]]] = {}
_TWIML_MAX = 512   # the steps × languages × sequence numbers of a line; Confirm texts vary per caller


class _Heard:
    """`speak`/`has_audio` for one render, noting the audio files it played: `names` is None once
    any prompt was not a file on disk (a render-on-fetch URL, a render started, a <Say>)."""

    def __init__(self) -> None:
        self.names: list[str] | None = []

    def _note(self, name: str | None) -> None:
        if name is None:
            self.names = None
        elif self.names is not None:
            self.names.append(name)

    def speak(self, verb: Any, key: str, language: str, **values: Any) -> None:
        self._note(prompts.speak(verb, key, language, **values))

    def has_audio(self, key: str, language: str, **values: Any) -> bool:
        name = prompts.audio_on_disk(key, language, **values)
        self._note(name)
        return name is not None


#: Stands for the CallSid while a text is kept (a transfer's whisper URL names the call): made of
#: the characters a CallSid may have (`_SID`), which URLs and XML carry as they are.
_THIS_CALL = "CAthisCallRenderText"


def render_text(decision: Decision, ctx: RenderContext) -> str:
    """`str(render(decision, ctx))`, re-used while it would come out the same (`kept_text`).

    Every call hears the same welcome, offers, transfers and goodbyes; building and serialising
    their VoiceResponse cost ~60 us per webhook. The text depends only on the key below, the
    call's sid (rendered as `_THIS_CALL`, put back on use), the prompt catalogue and audio.
    """
    if not ctx.public_url or not _SID.match(ctx.call_sid) or ctx.speak is not prompts.speak or \
            ctx.has_audio is not prompts.has_audio:
        # Without a public URL the audio URLs follow the request's host: not the same for everyone;
        # other speakers (a test's) cannot say which files they played.
        return str(render(decision, ctx))
    state = decision.state
    key = (decision.action, state.step, state.seq, state.language, ctx.capture, ctx.public_url, ctx.hints,
           ctx.gather_language)
    body = kept_text(key, ctx, lambda kept: str(render(decision, dataclasses.replace(kept, call_sid=_THIS_CALL))))
    return body.replace(_THIS_CALL, ctx.call_sid)


def kept_text(key: tuple[Any, ...], ctx: RenderContext, make: Callable[[RenderContext], str]) -> str:
    """`make(ctx)`, the TwiML text of a document `key` names, re-used while it would come out the same.

    `key` holds everything rendering reads besides the prompts (`ctx.speak` is `prompts.speak`).
    The text is kept only when every prompt was a file on disk — no render started, no <Say>
    counted — and re-used while the catalogue it was spoken from is served (words and
    pronunciations reload together) and those files are still on disk (checked as `speak`
    checks them).
    """
    try:
        known = _TWIML.get(key)
    except TypeError:   # an action holding a list or dict: rendered every time
        return make(ctx)
    catalogue = prompts.catalogue_now()
    if known is not None and known[0] is catalogue and prompts.still_on_disk(known[2]):
        return known[1]
    heard = _Heard()
    body = make(dataclasses.replace(ctx, speak=heard.speak, has_audio=heard.has_audio))
    if heard.names is not None:
        if len(_TWIML) >= _TWIML_MAX:
            _TWIML.clear()   # many callers' confirmations, or reloads: start over rather than grow
        _TWIML[key] = (catalogue, body, tuple(heard.names))
    return body


#: (action, language) → (the catalogue, the words the action asks): see `asked_text`.
_ASKED: dict[tuple[Any, str], tuple[Any, str]] = {}


def asked_text(action: Any, language: str) -> str:
    """The words a listening action says (kept with the call's state for the next turn's record).

    Kept per action, language and prompt catalogue: the same few questions are asked of every
    caller, and filling them anew cost a few microseconds a prompt."""
    catalogue = prompts.catalogue_now()
    key = (action, language)
    try:
        known = _ASKED.get(key)
    except TypeError:   # an action holding a list or dict: filled every time
        return " ".join(prompts.text(k, language, **values) for k, values in prompt_plan(action))
    if known is None or known[0] is not catalogue:
        if len(_ASKED) >= _TWIML_MAX:
            _ASKED.clear()
        known = _ASKED[key] = (catalogue, " ".join(prompts.text(k, language, **values)
                                                   for k, values in prompt_plan(action)))
    return known[1]


def context(sid: str, state: CallState, current: Rules) -> RenderContext:
    """Everything `render` needs for this call at its current step."""
    return RenderContext(call_sid=sid, speak=prompts.speak, has_audio=prompts.has_audio,
                         capture=capture_mode(state.language),
                         public_url=current_app.config.get("IVR_PUBLIC_URL", ""),
                         hints=hints_for(current, state.language, state.step),
                         gather_language=_gather_locale(current, state.language))


def _gather_locale(current: Rules, language: str) -> str:
    """The call language's speech-recognition locale, from its language file."""
    return current.language(language).locales["gather"] if language in current.languages else ""


def describe(decision: Decision) -> dict[str, Any]:
    """A decision as stored for admins: kind, reason and the action's fields.

    The fields as they are, not `dataclasses.asdict`'s deep copy (24 us for a menu): the store
    encodes the detail as JSON (`convert.dumps`: tuples as lists, nested dataclasses as asdict
    makes them), so what is stored is the same."""
    action = decision.action
    names = _FIELD_NAMES.get(type(action))
    if names is None:
        names = _FIELD_NAMES[type(action)] = tuple(f.name for f in dataclasses.fields(action))
    return {"kind": action.kind, "reason": decision.reason,
            "action": {name: getattr(action, name) for name in names}, "step": decision.state.step}


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def apply(sid: str, previous: CallState, decision: Decision, *, turn: Turn | None = None,
          classification: Classification | None = None, event: str | None = None,
          first: Sequence[tuple[str, Mapping[str, Any]]] = (), new_call: tuple[str, str] | None = None,
          took_pending_turn: bool = False, recording: tuple[str, float | None] | None = None) -> Response:
    """Store the decision's effects, render its TwiML and commit both (see `finish`).

    `first`: events (kind, detail) to record before the decision's, e.g. the dial's status.
    `new_call`: (From, To) of a call that starts with this decision (its row is created first).
    `took_pending_turn`: `turn` is the one a media stream parked; it is cleared with the state.
    `recording`: (URL, seconds) of the recording `turn` was heard in, kept with the call.
    """
    s = db.session()
    if isinstance(decision.action, Ask) and capture_mode(decision.state.language) == "keypad":
        # No speech recognition for this language: asking "what are you calling about" is pointless.
        menu = show_menu(decision.state, "", rules(), "no speech recognition for this language")
        decision = dataclasses.replace(menu, reason=f"{decision.reason}; {menu.reason}")
    # A report is filed (a write) before rendering: the case number it gets is what is read back.
    # So rendering runs inside the write transaction here; it is cheap because `prompts.speak`
    # never waits for a voice (a new case number is rendered in the background, fetched by Twilio).
    decision, filed = effects.file_report(sid, decision, rules())
    asked = asked_text(decision.action, decision.state.language)
    state = dataclasses.replace(decision.state, seq=previous.seq + 1, prompt=asked[:1000])
    decision = dataclasses.replace(decision, state=state)
    # Render and describe before the first write: a write transaction holds SQLite's write turn
    # (both workers wait for it) and PostgreSQL's row lock until the commit, so the writes below
    # go back to back and nothing slow happens between them.
    body = render_text(decision, context(sid, state, rules()))
    described = describe(decision)
    action = decision.action
    outcomes = ([filed] if filed else []) + outcomes_of(decision)
    # A new call's row is created with its state in one statement, unless there is more to store.
    started = new_call is not None and not outcomes and not took_pending_turn
    if started:
        calls.start_call(s, sid, *new_call, state)
    elif new_call is not None:
        calls.ensure_call(s, sid, *new_call)
    for kind, detail in first:
        calls.add_event(s, sid, kind, detail)
    if recording is not None:
        calls.add_recording(s, sid, recording[0], "utterance", recording[1])
    effects.perform(sid, decision, rules())
    if turn is not None:
        calls.add_turn(s, sid, previous.step, previous.prompt, turn.speech, turn.digits, turn.asr_confidence,
                       classification, described)
    else:
        calls.add_event(s, sid, "decision", {"after": event or "", **described})
    if isinstance(action, Callback) and action.done:
        calls.add_message(s, sid, action.department, "callback", None)
    # The state and the outcome in one UPDATE of the call's row (the outcome's details are
    # merged by the database: no read of the row first), unless the row was just created with it.
    if not started:
        calls.save_state(s, sid, state, outcomes, clear_pending_turn=took_pending_turn)
    answer = finish(sid, body)
    metrics.observe_decision(previous.step, action, decision.reason, answered=turn is not None)
    return answer


def outcomes_of(decision: Decision) -> list[calls.Outcome]:
    """The outcomes `decision` records for the reports: its action's (once: a repeated offer or
    alert, a reprompt, is the same outcome) and a call back's."""
    action = decision.action
    found: list[calls.Outcome] = []
    if action.kind in OUTCOMES and not getattr(action, "reprompt", None):
        found.append((OUTCOMES[action.kind], {"department": getattr(action, "department", None),
                                              "reason": decision.reason}))
    if isinstance(action, Callback) and action.done:
        found.append(("callback", {"department": action.department}))
    return found


def respond_to_turn(call_sid: str, turn: Turn, *, took_pending_turn: bool = False,
                    recording: tuple[str, float | None] | None = None) -> Response:
    """The caller answered (`turn`) at the call's current step: decide, store and answer TwiML.

    400 for a missing/malformed CallSid; other edges should wrap their view in `safe_webhook`.
    `took_pending_turn`: `turn` is the one a media stream parked (cleared with the state);
    `recording`: (URL, seconds) of the recording `turn` was heard in (stored with the turn).
    """
    if not _SID.match(call_sid or ""):
        abort(400, description="CallSid is missing or malformed; Twilio always sends it")
    state = stored_state(call_sid)
    current = rules()
    new_call = None
    if state is not None:
        g.ivr_language = state.language  # the rescue answer, if any, speaks the caller's language
    else:
        # A turn for a call we never greeted (e.g. the database was restored): start it properly
        # (its row is created with the webhook's other writes, after deciding and rendering).
        new_call = (request.values.get("From", ""), request.values.get("To", ""))
        state = CallState(language=current.default_language)
    classification = None
    if turn.speech and state.step in CLASSIFIED_STEPS:
        classification = rules_source.current_classifier().classify(turn.speech, state.language)
    moment = now()
    notice = effects.notice_for(call_sid, state, classification, moment, current)
    decision = decide(state, turn, classification, moment, current, notice=notice)
    return apply(call_sid, state, decision, turn=turn, classification=classification, new_call=new_call,
                 took_pending_turn=took_pending_turn, recording=recording)
