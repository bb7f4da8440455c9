"""The SMS conversation: a text in, what to answer and what to remember out. Pure (no I/O, no clock).

The same rules and classifier as the phone line. A report goes text → intent → service; when the
text names no place, the line asks for it in one question and keeps the draft (`pending`); then the
edge creates the request (`OpenCase`) and `opened_reply` words the answer with the case number.
`STATUS <case>` is looked up by the edge (`LookUpCase`) and answered by `status_reply`.

Replies are lists of parts `(text key, values)`: the words are in prompts/sms/<lang>.yaml, filled
by the edge, so admins edit them like every other prompt.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Mapping, Sequence

from ivr.routing.classify import Classification, Classifier, interpret_yes_no
from ivr.routing.hours import hours_text, is_open
from ivr.routing.rules import Rules
from ivr.routing.services import Service, normalise_case_number, service_for_intent
from ivr.routing.sms_commands import (MAX_BODY, Command, body_problem, detect_language, find_location,
                                      find_topic, read_command)

#: A draft older than this is forgotten: the next text starts afresh.
PENDING_TTL = timedelta(hours=24)
MAX_CHOICES = 3
#: Language cues a text needs beyond the other language's to switch a texter's language.
SWITCH_MARGIN = 3
MAX_ADDRESS = 200
MAX_DESCRIPTION = 1000

Part = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class Texter:
    """What we remember about the number that texted (ivr.store.sms_contacts)."""
    language: str | None = None
    opted_out: bool = False
    pending: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Reply:
    """The answer and the effects to store with it.

    parts: what to text back, in order (empty: answer nothing). effects: ("opt_out",),
    ("opt_in",), ("subscribe", topic), ("unsubscribe", topic). pending: the new draft (None: none).
    """
    parts: tuple[Part, ...]
    language: str
    pending: Mapping[str, Any] | None = None
    effects: tuple[tuple[str, ...], ...] = ()
    reason: str = ""
    outcome: str = ""          # what the line did, for the metrics ("case", "asked_place", "stop" …)


@dataclass(frozen=True)
class OpenCase:
    """Create a service request, then answer with `opened_reply`."""
    service: Service
    description: str
    address: str
    language: str
    reason: str = ""


@dataclass(frozen=True)
class LookUpCase:
    """Look up a case (only the texter's own), then answer with `status_reply`."""
    case: str | None           # normalised; None when the text was not a valid case number
    written: str               # as the texter wrote it
    language: str


@dataclass(frozen=True)
class CaseView:
    """What a status answer tells about a case (from ivr.store.service_requests)."""
    case: str
    service: Service | None
    service_name: str
    status: str
    note: str
    department: str


Step = Reply | OpenCase | LookUpCase


@dataclass(frozen=True)
class _Context:
    rules: Rules
    classifier: Classifier
    now: datetime
    language: str
    texter: Texter
    pending: Mapping[str, Any] | None = field(default=None)


def respond(texter: Texter, body: str, media: int, now: datetime, rules: Rules, classifier: Classifier,
            *, carrier_keyword: str | None = None) -> Step:
    """What to do with one text. `media`: how many pictures/files came with it. `carrier_keyword`:
    Twilio's own reading of an opt-out keyword (its `OptOutType`: STOP, START or HELP) when its
    Advanced Opt-Out is on; Twilio has then answered the texter itself, so the line only records it."""
    body = body or ""
    pending = texter.pending if _fresh(texter.pending, now) else None
    language = texter.language if texter.language in rules.languages else \
        (detect_language(body, rules) or rules.default_language)
    if texter.language and not pending:
        # A new text clearly in the other language switches (answers to our question do not:
        # "calle Juárez 120" is a place, not a choice of Spanish).
        language = detect_language(body, rules, margin=SWITCH_MARGIN) or language
    ctx = _Context(rules, classifier, now, language, texter, pending)
    if carrier_keyword:
        return _carrier(ctx, carrier_keyword.strip().upper())
    problem = body_problem(body, media)
    if problem:
        if texter.opted_out:
            return Reply((), language, pending, reason=f"{problem} text from an opted-out number: no answer",
                         outcome="ignored")
        return Reply(((problem, {"limit": MAX_BODY}),), language, pending, reason=f"unreadable text: {problem}",
                     outcome="unreadable")
    command = read_command(body, rules, opted_out=texter.opted_out)
    if texter.opted_out and (command is None or command.kind not in ("start", "help")):
        return Reply((), language, None, reason="opted out: nothing is sent until START", outcome="ignored")
    classification = None
    if command is None or len(body.split()) > 1:
        # "stop, someone is breaking in" is an emergency, not an opt-out: only one-word commands skip this.
        classification = classifier.classify(body[:MAX_DESCRIPTION], language)
        if classification.emergency and not texter.opted_out:
            return _emergency(ctx, classification)
    if command is not None:
        return _command(ctx, command)
    if normalise_case_number(body):
        return LookUpCase(normalise_case_number(body), body.strip(), language)
    assert classification is not None
    if pending:
        answered = _answer_pending(ctx, body, classification)
        if answered is not None:
            return answered
    return _report(ctx, body.strip()[:MAX_DESCRIPTION], classification)


def _carrier(ctx: _Context, keyword: str) -> Reply:
    """Twilio's Advanced Opt-Out read the keyword and answered: record it, send nothing more."""
    effects = {"STOP": (("opt_out",),), "START": (("opt_in",),)}.get(keyword, ())
    pending = None if keyword == "STOP" else ctx.pending
    return Reply((), ctx.language, pending, effects, f"Twilio opt-out keyword {keyword[:10]} (Twilio answered)",
                 outcome=keyword.lower()[:10] if keyword in ("STOP", "START", "HELP") else "ignored")


def _fresh(pending: Mapping[str, Any] | None, now: datetime) -> bool:
    if not pending:
        return False
    try:
        return now - datetime.fromisoformat(str(pending.get("at"))) < PENDING_TTL
    except (TypeError, ValueError):
        return False


def _draft(ctx: _Context, stage: str, **values: Any) -> dict[str, Any]:
    return {"stage": stage, "at": ctx.now.isoformat(), **values}


# --- commands ------------------------------------------------------------------------------------------
def _command(ctx: _Context, command: Command) -> Step:
    rules, language = ctx.rules, ctx.language
    if command.kind == "stop":
        return Reply((("stopped", {}),), language, None, (("opt_out",),), "STOP: opted out")
    if command.kind == "start":
        return Reply((("started", {}),), language, None, (("opt_in",),), "START: opted in again")
    if command.kind == "help":
        return Reply((("help", {"topics": topic_list(rules, language)}),), language, ctx.pending, reason="HELP")
    if command.kind == "language":
        return Reply((("language_set", {}),), command.argument, ctx.pending, reason=f"language chosen: {command.argument}")
    if command.kind == "status":
        return LookUpCase(normalise_case_number(command.argument), command.argument.strip(), language)
    if command.kind == "topics":
        return Reply((("topics", _topics_values(rules, language)),), language, ctx.pending, reason="topics listed")
    topic = find_topic(command.argument, rules)
    if topic is None:
        values = {"word": command.argument.strip()[:40], **_topics_values(rules, language)}
        key = "unknown_topic" if command.argument.strip() else "topics"
        return Reply(((key, values),), language, ctx.pending, reason=f"{command.kind}: no such topic")
    keyword = topic.keywords.get(language, (topic.id,))[0].upper()
    values = {"topic": topic.name.get(language, topic.id), "keyword": keyword}
    if command.kind == "subscribe":
        return Reply((("subscribed", values),), language, ctx.pending, (("subscribe", topic.id),),
                     f"subscribed to {topic.id}")
    return Reply((("unsubscribed", values),), language, ctx.pending, (("unsubscribe", topic.id),),
                 f"unsubscribed from {topic.id}")


def topic_list(rules: Rules, language: str) -> str:
    """"WATER (water and sewer service), LIGHTS (street lights) …" for a text."""
    return ", ".join(f"{t.keywords.get(language, (t.id,))[0].upper()} ({t.name.get(language, t.id)})"
                     for t in rules.topics)


def _topics_values(rules: Rules, language: str) -> dict[str, Any]:
    example = rules.topics[0].keywords.get(language, (rules.topics[0].id,))[0].upper() if rules.topics else ""
    return {"topics": topic_list(rules, language) or "-", "example": example}


# --- reports -------------------------------------------------------------------------------------------
def _emergency(ctx: _Context, classification: Classification) -> Reply:
    advisory = ctx.rules.emergency.advisory.get(ctx.language, "")
    return Reply((("emergency", {"advisory": advisory}),), ctx.language, None,
                 reason=f"emergency ({classification.explanation}): 911 advice, no case")


def _answer_pending(ctx: _Context, body: str, classification: Classification) -> Step | None:
    """The texter answering our question, or None when the text is something new."""
    pending = ctx.pending or {}
    stage, text = pending.get("stage"), str(pending.get("text", ""))
    intent = str(pending.get("intent", ""))
    if stage == "location":
        service = service_for_intent(ctx.rules, intent)
        top = classification.top
        if service is None or top is not None and top.intent not in (None, intent) and \
                top.confidence >= ctx.rules.thresholds.route:
            return None     # not the place we asked for: a new report ("also, a streetlight is out")
        address = " ".join(body.split())[:MAX_ADDRESS]
        return OpenCase(service, text, address, ctx.language, reason=f"{intent}: location given")
    if stage == "confirm":
        said = interpret_yes_no(body, None, [ctx.rules.language(c) for c in ctx.rules.languages])
        if said is True:
            return _proceed(ctx, intent, text, "confirmed by the texter", answer=body)
        if said is False:
            options = [o for o in pending.get("alternatives", ()) if o != intent]
            if options:
                return _choose(ctx, text, options, "not that: other choices")
            return Reply((("describe_again", {}),), ctx.language, None, reason="not confirmed; asked to describe it again")
        return None
    if stage == "choose":
        options = list(pending.get("options", ()))
        choice = body.strip().split()[0].rstrip(".),") if body.strip() else ""
        if choice.isdigit() and 1 <= int(choice) <= len(options):
            return _proceed(ctx, options[int(choice) - 1], text, f"choice {choice}", answer=body)
        return None
    return None


def _report(ctx: _Context, text: str, classification: Classification) -> Step:
    top = classification.top
    thresholds = ctx.rules.thresholds
    intents = [c.intent for c in classification.candidates if c.intent]
    if top is None or top.intent is None:
        return Reply((("not_understood", {}),), ctx.language, None, reason="nothing recognised")
    if top.confidence >= thresholds.route:
        return _proceed(ctx, top.intent, text, f"{top.intent} at {top.confidence:.2f} ≥ route")
    if top.confidence >= thresholds.confirm:
        description = ctx.rules.intent(top.intent).description.get(ctx.language, top.intent)
        draft = _draft(ctx, "confirm", intent=top.intent, text=text, alternatives=intents[1:MAX_CHOICES + 1])
        return Reply((("confirm", {"description": description}),), ctx.language, draft,
                     reason=f"{top.intent} at {top.confidence:.2f}: asked to confirm")
    return _choose(ctx, text, intents[:MAX_CHOICES], f"unsure ({top.confidence:.2f}): choices offered")


def _choose(ctx: _Context, text: str, options: Sequence[str], reason: str) -> Reply:
    options = list(options)[:MAX_CHOICES]
    if not options:
        return Reply((("not_understood", {}),), ctx.language, None, reason=reason)
    choices = [("choice", {"digit": n, "description": ctx.rules.intent(o).description.get(ctx.language, o)})
               for n, o in enumerate(options, 1)]
    draft = _draft(ctx, "choose", options=options, text=text)
    return Reply((("choose", {"choices": choices}),), ctx.language, draft, reason=reason)


def _proceed(ctx: _Context, intent: str, text: str, reason: str, answer: str = "") -> Step:
    """The problem is known: open a case if we know where (in the report, or in the `answer` that
    confirmed it: "yes, at 5 Oak St"), else ask where (once)."""
    service = service_for_intent(ctx.rules, intent)
    if service is None:
        department = ctx.rules.departments[ctx.rules.intent(intent).department]
        values = {"department": department.name.get(ctx.language, department.id),
                  "description": ctx.rules.intent(intent).description.get(ctx.language, intent)}
        return Reply((("no_service", values),), ctx.language, None, reason=f"{intent}: no service to report; {reason}")
    lang = ctx.rules.language(ctx.language)
    address = find_location(text, lang) or (find_location(answer, lang) if answer else None)
    if address is None:
        draft = _draft(ctx, "location", intent=intent, text=text)
        return Reply((("ask_location", {"service": service.name_in(ctx.language)}),), ctx.language, draft,
                     reason=f"{intent}: location asked; {reason}")
    return OpenCase(service, text, address[:MAX_ADDRESS], ctx.language, reason=f"{intent}: {reason}")


# --- answers after the edge did its part -----------------------------------------------------------------
def opened_reply(case: str, step: OpenCase, now: datetime, rules: Rules, alert_text: str | None) -> Reply:
    """The case number verbatim, who handles it, and their hours when they are closed now."""
    language = step.language
    department = rules.departments[step.service.department]
    name = department.name.get(language, department.id)
    parts: list[Part] = [("opened", {"case": case, "service": step.service.name_in(language),
                                      "address": step.address, "department": name})]
    if not is_open(department, now):
        parts.append(("closed_now", {"department": name, "hours": hours_text(department, rules.language(language))}))
    if alert_text:
        parts.append(("alert_note", {"alert": alert_text}))
    parts.append(("status_hint", {"case": case}))
    return Reply(tuple(parts), language, None, reason=f"case {case} opened ({step.reason})")


def status_reply(step: LookUpCase, found: CaseView | None, rules: Rules, *, pending: Mapping[str, Any] | None) -> Reply:
    """A case's status for its own texter; the same "not found" whether it does not exist or is not
    theirs, so nobody learns about other people's cases by guessing numbers."""
    language = step.language
    if step.case is None:
        return Reply((("status_bad", {"written": step.written[:20]}),), language, pending, reason="STATUS without a case number")
    if found is None:
        return Reply((("status_unknown", {"case": step.case}),), language, pending, reason=f"STATUS {step.case}: not theirs or unknown")
    department = rules.departments.get(found.department)
    values = {"case": found.case, "department": department.name.get(language, department.id) if department else found.department,
              "service": found.service.name_in(language) if found.service else found.service_name}
    parts: list[Part] = [(f"status_{found.status}", values)]
    if found.note:
        parts.append(("status_note", {"note": found.note[:300]}))
    return Reply(tuple(parts), language, pending, reason=f"STATUS {found.case}: {found.status}")
