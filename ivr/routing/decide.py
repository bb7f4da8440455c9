"""(call state, caller's turn, classification, now, rules) → next action. Pure.

The whole conversation is a function of what is stored between webhooks (`CallState`), so any
worker can serve any step. Nothing here touches Flask, the database or the network.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from ivr.routing import report
from ivr.routing.actions import (AfterHours, AlertNotice, Ask, Callback, Confirm, Emergency, Goodbye,
                                 Operator, Queue, Subscribe, Transfer, Voicemail)
from ivr.routing.asking import MAX_REPROMPTS, answer_languages, call_language, interpret_choice, nothing_said, \
    reprompt_or
from ivr.routing.classify import Classification, interpret_language, interpret_yes_no
from ivr.routing.hours import closure_note, hours_text, is_open
from ivr.routing.menu import localized, menu_options, show_menu
from ivr.routing.rules import Department, Fallback, Rules
from ivr.routing.state import CallState, Decision, Notice, Turn

__all__ = ["decide", "route_department", "after_dial", "after_queue", "MAX_REPROMPTS", "MAX_ASKS",
           "CLASSIFIED_STEPS", "ALERT_STEPS"]

#: "What are you calling about?" is asked at most this often (the first ask + one "ask again").
MAX_ASKS = 2
#: Steps where the caller's words are classified: what they are calling about, and whether it is an
#: emergency — at every step where they speak freely, so an emergency always wins (never a report).
CLASSIFIED_STEPS = ("welcome", "ask", "confirm", "alert") + report.REPORT_STEPS
#: Steps at which the caller is listened to; "0" reaches the operator at each of them.
LISTENING_STEPS = ("menu", "callback") + CLASSIFIED_STEPS
#: Steps whose answer may meet an active alert (`notice`): the edge looks one up only for these
#: (by the classified intent, or at `menu` by the topic of the department a key chooses).
ALERT_STEPS = ("welcome", "ask", "alert", "menu")

_reprompt_or = reprompt_or
_language = call_language
_answer_languages = answer_languages


def decide(state: CallState, turn: Turn, classification: Classification | None,
           now: datetime, rules: Rules, notice: Notice | None = None) -> Decision:
    """The next action after the caller's `turn` at `state.step`.

    `classification` is the classifier's reading of `turn.speech` (None when there was no speech).
    `notice` is an active alert for what the caller is calling about (the edge looks it up for
    the classified intent at `ALERT_STEPS`); a caller hears each alert once.
    """
    digits = (turn.digits or "").strip()
    if state.step in LISTENING_STEPS and digits == "0":
        return to_operator(state, now, rules, "caller pressed 0")
    if state.step in CLASSIFIED_STEPS and classification is not None and classification.emergency:
        return emergency(state, rules, f"emergency detected: {classification.explanation}")
    if state.step in CLASSIFIED_STEPS and turn.emergency_heard:
        return emergency(state, rules, f"emergency detected: {turn.emergency_heard}")
    if state.step in report.REPORT_STEPS:
        return report.converse(state, turn, classification, rules)
    if state.step == "alert":
        return _alert(state, turn, notice, now, rules)
    if state.step == "welcome":
        return _welcome(state, turn, classification, now, rules, notice)
    if state.step == "ask":
        return _answer(state, turn, classification, now, rules, notice)
    if state.step == "confirm":
        return _confirm(state, turn, now, rules)
    if state.step == "menu":
        return _menu(state, digits, now, rules, notice)
    if state.step == "callback":
        return _callback(state, turn, rules)
    # A turn after the call was routed (a stale or replayed action): nothing more to ask.
    return Decision(Goodbye(), replace(state, step="done"), f"no turn expected at step '{state.step}'")


def _welcome(state: CallState, turn: Turn, classification: Classification | None,
             now: datetime, rules: Rules, notice: Notice | None) -> Decision:
    language = interpret_language(turn.speech, turn.digits, rules)
    if language:
        asked = replace(state, step="ask", language=language, retries=0, asks=1)
        return Decision(Ask(), asked, f"caller chose language {language}")
    if (turn.digits or "").strip() == "9":
        return show_menu(state, "", rules, "caller pressed 9 at the greeting")
    if turn.speech and classification is not None and classification.candidates:
        # The caller skipped the language choice and said what they want: answer it directly.
        return _answer(replace(state, step="ask", asks=1), turn, classification, now, rules, notice)
    asked = replace(state, step="ask", language=state.language or rules.default_language, retries=0, asks=1)
    if turn.unheard:
        # They said something we could not recognise in time: "please say that again".
        return Decision(Ask(prompt="ask_again", reprompt="no_match"), asked,
                        f"speech not recognised ({turn.unheard}); default language, asking again")
    return Decision(Ask(), asked, "no language chosen; default language")


def _answer(state: CallState, turn: Turn, classification: Classification | None,
            now: datetime, rules: Rules, notice: Notice | None = None) -> Decision:
    digits = (turn.digits or "").strip()
    if digits == "9":
        return show_menu(state, "", rules, "caller pressed 9 for the menu")
    nothing = not digits and not (turn.speech or "").strip() and not turn.unheard
    if nothing or classification is None or classification.top is None:
        why, key = ("no input", "no_input") if nothing else \
            (f"speech not recognised ({turn.unheard})", "no_match") if turn.unheard else ("no match", "no_match")
        again = Decision(Ask(prompt="ask_again" if key == "no_match" else "ask", reprompt=key), state, "")
        return _reprompt_or(state, why, again, show_menu(state, "", rules, "offering the keypad menu"))
    top = classification.top
    heard = replace(state, heard=classification.text[:200], confidence=round(top.confidence, 3),
                    intent=top.intent, department=top.department, retries=0)
    if top.department == rules.operator:
        return to_operator(heard, now, rules, f"caller asked for the operator ({top.explanation})")
    thresholds = rules.thresholds
    asr_doubtful = turn.asr_confidence is not None and turn.asr_confidence < thresholds.confirm
    confident = top.confidence >= thresholds.route and not asr_doubtful
    if notice is not None and notice.alert_id not in state.alerts_heard and top.department \
            and top.confidence >= thresholds.confirm:
        return _hear_alert(heard, notice, "route" if confident else "confirm")
    if confident and top.department:
        decision = route_department(heard, top.department, now, rules)
        return replace(decision, reason=f"confidence {top.confidence:.2f} ≥ route {thresholds.route}; {decision.reason}")
    if top.confidence >= thresholds.confirm and top.department:
        intent = next((i for i in rules.intents if i.id == top.intent), None)
        description = localized(intent.description, state.language, rules) if intent else \
            localized(rules.departments[top.department].name, state.language, rules)
        why = f"ASR confidence {turn.asr_confidence:.2f} is low" if asr_doubtful else \
            f"confidence {top.confidence:.2f} between confirm {thresholds.confirm} and route {thresholds.route}"
        return Decision(Confirm(top.department, top.intent, description), replace(heard, step="confirm"), why)
    again = Decision(Ask(prompt="ask_again", reprompt="no_match"), state, "")
    menu = show_menu(state, "", rules, "offering the keypad menu")
    return _reprompt_or(state, f"confidence {top.confidence:.2f} < confirm {thresholds.confirm}", again, menu)


def _hear_alert(state: CallState, notice: Notice, then: str, reprompt: str | None = None) -> Decision:
    """The alert first ("We know about …"); `then` is what "something else" continues with."""
    action = AlertNotice(notice.alert_id, notice.topic, notice.text, notice.can_subscribe, reprompt)
    heard = state.alerts_heard if notice.alert_id in state.alerts_heard else state.alerts_heard + (notice.alert_id,)
    return Decision(action, replace(state, step="alert", alert_then=then, alerts_heard=heard),
                    f"alert {notice.alert_id} on {notice.topic} is active for {state.intent or state.department}")


def _alert(state: CallState, turn: Turn, notice: Notice | None, now: datetime, rules: Rules) -> Decision:
    """After the alert: 1 / "something else" continues as if it had not been heard; 2 / "updates"
    subscribes to the topic by text; silence repeats it once, then the call ends (answered by it)."""
    keys = {"something_else": "1", **({"updates": "2"} if notice is not None and notice.can_subscribe else {})}
    chosen = interpret_choice(turn, keys, answer_languages(state, rules))
    if chosen == "updates" and notice is not None:
        return Decision(Subscribe(notice.topic, notice.name), replace(state, step="done"),
                        f"caller subscribed to {notice.topic} updates by text")
    if chosen == "something_else" or notice is None:
        # The alert ended meanwhile, or the caller has another problem: carry on as before it.
        carry_on = replace(state, retries=0)
        if state.alert_then == "confirm" and state.department in rules.departments:
            intent = next((i for i in rules.intents if i.id == state.intent), None)
            description = localized(intent.description if intent else rules.departments[state.department].name,
                                    state.language, rules)
            return Decision(Confirm(state.department, state.intent, description), replace(carry_on, step="confirm"),
                            "caller is calling about something else; confirming")
        decision = route_department(carry_on, state.department or rules.operator, now, rules)
        return replace(decision, reason=f"caller is calling about something else; {decision.reason}")
    key = "no_input" if nothing_said(turn) else "no_match"
    again = _hear_alert(state, notice, state.alert_then, reprompt=key)
    return _reprompt_or(replace(state, retries=max(state.retries, 1)), "no answer to the alert", again,
                        Decision(Goodbye("alert_goodbye"), replace(state, step="done"), "the alert answered the call"))


def _confirm(state: CallState, turn: Turn, now: datetime, rules: Rules) -> Decision:
    if (turn.digits or "").strip() == "9":
        return show_menu(state, "", rules, "caller pressed 9 for the menu")
    answer = interpret_yes_no(turn.speech, turn.digits, _answer_languages(state, rules))
    if answer is True and state.department:
        decision = route_department(replace(state, retries=0), state.department, now, rules)
        return replace(decision, reason=f"caller confirmed; {decision.reason}")
    if answer is False:
        cleared = replace(state, department=None, intent=None, retries=0)
        if state.asks < MAX_ASKS:
            return Decision(Ask(prompt="ask_again"), replace(cleared, step="ask", asks=state.asks + 1),
                            "caller said no; asking again")
        return show_menu(cleared, "", rules, "caller said no again; offering the keypad menu")
    pending = rules.departments.get(state.department or "")
    if pending is None:
        return show_menu(state, "", rules, "nothing left to confirm")
    nothing = not turn.speech and not turn.digits and not turn.unheard
    intent = next((i for i in rules.intents if i.id == state.intent), None)
    description = localized(intent.description if intent else pending.name, state.language, rules)
    again = Decision(Confirm(pending.id, state.intent, description,
                             reprompt="no_input" if nothing else "no_match"), state, "")
    return _reprompt_or(state, "no yes/no answer", again, show_menu(state, "", rules, "offering the keypad menu"))


def _menu(state: CallState, digits: str, now: datetime, rules: Rules, notice: Notice | None = None) -> Decision:
    path = state.menu_path
    operator = to_operator(state, now, rules, "offering a person")
    if not digits:
        again = show_menu(state, path, rules, "", reprompt="no_input")
        return _reprompt_or(state, "no key pressed", again, operator)
    if digits == "9":
        return show_menu(state, path, rules, "caller pressed 9 to repeat", reprompt=None)
    if digits == "*" and path:
        return show_menu(state, path[:-1], rules, "caller pressed * to go back")
    chosen = next((o for o in menu_options(rules, path) or () if o.digit == digits), None)
    if chosen is None:
        again = show_menu(state, path, rules, "", reprompt="no_match")
        return _reprompt_or(state, f"invalid key {digits!r}", again, operator)
    if chosen.options:
        return show_menu(state, path + digits, rules, f"caller chose group {path + digits}")
    if notice is not None and notice.alert_id not in state.alerts_heard and chosen.department:
        # A department chosen on the keypad whose topic has an active alert: heard first, as when said.
        chose = replace(state, retries=0, menu_path=path + digits, department=chosen.department)
        return _hear_alert(chose, notice, "route")
    decision = route_department(replace(state, retries=0, menu_path=path + digits), chosen.department or "", now, rules)
    return replace(decision, reason=f"caller chose {path + digits} on the keypad; {decision.reason}")


def _callback(state: CallState, turn: Turn, rules: Rules) -> Decision:
    department = state.department or rules.operator
    answer = interpret_yes_no(turn.speech, turn.digits, _answer_languages(state, rules))
    if answer is True:
        return Decision(Callback(department, done=True), replace(state, step="done"), "caller asked for a call back")
    name = localized(rules.departments[department].name, state.language, rules) if department in rules.departments else ""
    voicemail = Decision(Voicemail(department, name), replace(state, step="voicemail"),
                         "no call back requested; taking a message")
    if answer is False:
        return voicemail
    return _reprompt_or(state, "no answer to the call-back offer",
                        Decision(Callback(department), state, ""), voicemail)


def emergency(state: CallState, rules: Rules, reason: str) -> Decision:
    """Advisory, then the emergency line if configured, else the operator line dialled directly."""
    advisory = localized(rules.emergency.advisory, state.language, rules)
    target = rules.emergency.transfer
    new_state = replace(state, step="emergency", department=None, retries=0)
    if target and target not in state.tried:
        return Decision(Emergency(advisory, target, "emergency_transfer"),
                        replace(new_state, tried=state.tried + (target,)), reason)
    operator = rules.departments.get(rules.operator)
    if operator and operator.line not in state.tried:
        return Decision(Emergency(advisory, operator.line, "operator"),
                        replace(new_state, tried=new_state.tried + (operator.line,)),
                        f"{reason}; no emergency line left, dialling the operator line (never a queue)")
    return Decision(Emergency(advisory, None), replace(new_state, step="done"), f"{reason}; nothing left to dial")


def to_operator(state: CallState, now: datetime, rules: Rules, reason: str) -> Decision:
    """A person: the operator desk by its answer mode when open, else its closed policy."""
    desk = rules.departments[rules.operator]
    if desk.id in state.tried:
        # The desk already failed this caller (busy, queue error): take a message, never loop.
        return Decision(Voicemail(desk.id, localized(desk.name, state.language, rules)),
                        replace(state, step="voicemail", department=desk.id),
                        f"{reason}; operator desk already tried; voicemail")
    if not is_open(desk, now):
        # A caller who asked for a person gets the desk's closed policy, not the report offer.
        decision = route_department(state, desk.id, now, rules, offer_report=False)
        return replace(decision, reason=f"{reason}; {decision.reason}")
    queue = desk.queue if desk.answer == "queue" else None
    routed = replace(state, step="queued" if queue else "routed", department=desk.id, retries=0,
                     tried=state.tried + (desk.id,))
    return Decision(Operator(desk.id, desk.line, queue), routed, f"{reason}; operator desk open")


def route_department(state: CallState, department_id: str, now: datetime, rules: Rules,
                     offer_report: bool = True) -> Decision:
    """Send the caller to a department: its answer mode when open, its closed policy otherwise
    (with "report it now" offered beside it when the problem can be reported)."""
    department = rules.departments.get(department_id)
    if department is None:
        return to_operator(state, now, rules, f"unknown department {department_id!r}")
    name = localized(department.name, state.language, rules)
    state = replace(state, department=department.id, retries=0, tried=state.tried + (department.id,))
    if is_open(department, now):
        if department.answer == "queue":
            return Decision(Queue(department.id, name, department.queue), replace(state, step="queued"),
                            f"{department.id} open; answers by queue")
        return Decision(Transfer(department.id, name, department.line), replace(state, step="routed"),
                        f"{department.id} open; transfer")
    return _closed(state, department, name, now, rules, offer_report)


def _closed(state: CallState, department: Department, name: str, now: datetime, rules: Rules,
            offer_report: bool = True) -> Decision:
    policy = department.when_closed
    why = f"{department.id} closed now"
    elsewhere = _elsewhere(state, department, name, policy, f"{why}; after hours", now, rules)
    if elsewhere:
        return elsewhere
    lang = _language(state, rules)
    hours = hours_text(department, lang) + closure_note(department, now, lang)
    then = {"callback": "callback", "message": "goodbye"}.get(policy.action, "voicemail")
    if offer_report and report.reportable(state, department, rules):
        return report.offer(state, department, name, hours, then, f"{why}; hours")
    step = {"callback": "callback", "goodbye": "done"}.get(then, "voicemail")
    return Decision(AfterHours(department.id, name, hours, then), replace(state, step=step),
                    f"{why}; hours then {then}")


def _elsewhere(state: CallState, department: Department, name: str, policy: Fallback, why: str,
               now: datetime, rules: Rules) -> Decision | None:
    """A fallback to another department or line not tried yet on this call (so it never loops)."""
    if not policy.target or policy.target in state.tried:
        return None
    if policy.action == "department":
        decision = route_department(state, policy.target, now, rules)
        return replace(decision, reason=f"{why} sends to {policy.target}: {decision.reason}")
    if policy.action == "transfer":
        return Decision(Transfer(department.id, name, policy.target),
                        replace(state, step="routed", tried=state.tried + (policy.target,)),
                        f"{why}: another line")
    return None


def after_dial(state: CallState, dial_status: str, now: datetime, rules: Rules) -> Decision:
    """After a <Dial> ends: done when answered, else the department's busy policy; never loops."""
    if dial_status in ("completed", "answered"):
        return Decision(Goodbye(), replace(state, step="done"), f"dial {dial_status}")
    if state.step == "emergency":
        return emergency(state, rules, f"emergency dial {dial_status or 'ended'}")
    department = rules.departments.get(state.department or "")
    if department is None:
        return to_operator(state, now, rules, f"dial {dial_status}; no department on record")
    name = localized(department.name, state.language, rules)
    policy = department.when_busy
    why = f"{department.id} dial {dial_status or 'failed'}"
    if policy.action == "queue":
        return Decision(Queue(department.id, name, department.queue), replace(state, step="queued"),
                        f"{why}; busy policy: queue")
    elsewhere = _elsewhere(state, department, name, policy, f"{why}; busy policy", now, rules)
    if elsewhere:
        return elsewhere
    if policy.action == "callback":
        return Decision(Callback(department.id), replace(state, step="callback", retries=0),
                        f"{why}; busy policy: call back")
    return Decision(Voicemail(department.id, name), replace(state, step="voicemail"), f"{why}; voicemail")


def after_queue(state: CallState, queue_result: str, rules: Rules) -> Decision:
    """After <Enqueue> ends: bridged/hangup end the call; leaving or a queue error takes a message."""
    if queue_result in ("bridged", "hangup", "redirected"):
        return Decision(Goodbye(), replace(state, step="done"), f"queue {queue_result}")
    department = rules.departments.get(state.department or "") or rules.departments[rules.operator]
    name = localized(department.name, state.language, rules)
    return Decision(Voicemail(department.id, name), replace(state, step="voicemail", department=department.id),
                    f"queue {queue_result or 'ended'}; taking a message")
