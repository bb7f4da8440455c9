"""After hours, "report it now": the caller's problem becomes a service request on the phone. Pure.

Beside a message or a call back, a closed department whose services can be reported offers it:
1. the problem — skipped when the caller already said it and it maps to a service; otherwise said
   (classified with the line's classifier, confirmed when unsure) or chosen from the department's
   services on the keypad;
2. the location, in one question ("I don't know", or 1, files the description only);
3. `FileReport`: the edge files it (one request per call: its source key is the CallSid) and hands
   the case number to `filed`, which reads it back digit by digit;
4. star or "repeat" reads it again, 1 texts it (`TextCase`, with the caller's consent), 2 ends.

"0" (a person) and emergencies are handled by `decide` before any of this: an emergency is never
turned into a report.
"""
from __future__ import annotations

from dataclasses import replace

from ivr.routing.actions import (Callback, Confirm, FileReport, Goodbye, ReadCase, ReportAsk, ReportOffer,
                                 TextCase, Voicemail)
from ivr.routing.asking import answer_languages, interpret_choice, nothing_said, reprompt_or
from ivr.routing.classify import Classification, interpret_yes_no
from ivr.routing.menu import localized
from ivr.routing.rules import Department, Rules
from ivr.routing.services import Service, all_services, service_for_intent, speak_case_number
from ivr.routing.state import CallState, Decision, Turn

__all__ = ["REPORT_STEPS", "reportable", "offer", "converse", "filed", "KEYPAD_SERVICES", "MAX_CASE_READS"]

#: The listening steps of the report dialogue (`decide` sends their turns to `converse`).
REPORT_STEPS = ("after_hours", "report_problem", "report_confirm", "report_location", "report_done")
#: Services listed on the keypad when the caller describes the problem (keys 1–8; 0 is a person).
KEYPAD_SERVICES = 8
#: How often the case number is read in all (the first reading and the repeats asked for).
MAX_CASE_READS = 4
#: Keys of the after-hours offers, in the order offered.
OFFER_KEYS = ("1", "2", "3")
#: Keys once the case number is read: star repeats it, 1 texts it, 2 finishes.
CASE_KEYS = {"repeat": "*", "text": "1", "finish": "2"}


def department_services(rules: Rules, department_id: str | None) -> list[Service]:
    """The services a department takes reports for, as listed on the keypad."""
    return [s for s in all_services(rules) if s.department == department_id][:KEYPAD_SERVICES]


def reportable(state: CallState, department: Department, rules: Rules) -> bool:
    """Whether the caller can report it now: what they said maps to a service, or (nothing said
    yet, e.g. chosen on the keypad) the department takes reports for some service."""
    if state.intent:
        return service_for_intent(rules, state.intent) is not None
    return bool(department_services(rules, department.id))


def offer(state: CallState, department: Department, name: str, hours: str, then: str, reason: str) -> Decision:
    """The closed department's hours, then "report it now" beside what its closed policy offers
    (`then`: callback → a call back or a message; voicemail → a message; goodbye → nothing else)."""
    offers = ("report",) + {"callback": ("callback", "voicemail"), "voicemail": ("voicemail",)}.get(then, ())
    return Decision(ReportOffer(department.id, name, hours, offers),
                    replace(state, step="after_hours", offers=offers, retries=0), f"{reason}; report it now offered")


def converse(state: CallState, turn: Turn, classification: Classification | None, rules: Rules) -> Decision:
    """The caller's answer at one of the `REPORT_STEPS`."""
    if state.step == "after_hours":
        return _choose(state, turn, rules)
    if state.step == "report_problem":
        return _problem(state, turn, classification, rules)
    if state.step == "report_confirm":
        return _confirm(state, turn, rules)
    if state.step == "report_location":
        return _location(state, turn, rules)
    return _case_read(state, turn, rules)


def filed(decision: Decision, case: str, can_text: bool, rules: Rules) -> Decision:
    """The request of `decision` (a `FileReport`) was filed as `case`: read the number back."""
    state = replace(decision.state, step="report_done", case=case, can_text=can_text, retries=0)
    return Decision(_read(state, rules, first=True), state, f"{decision.reason}; filed as case {case}")


# --- the offer ------------------------------------------------------------------------------
def _closed_default(state: CallState, rules: Rules, reason: str) -> Decision:
    """What the closed policy does without a report: a message when it offers one, else goodbye."""
    department = rules.departments.get(state.department or "")
    if department is not None and "voicemail" in state.offers:
        return Decision(Voicemail(department.id, localized(department.name, state.language, rules)),
                        replace(state, step="voicemail"), f"{reason}; taking a message")
    return Decision(Goodbye(), replace(state, step="done"), f"{reason}; goodbye")


def _choose(state: CallState, turn: Turn, rules: Rules) -> Decision:
    department = rules.departments.get(state.department or "")
    if department is None:
        return Decision(Goodbye(), replace(state, step="done"), "after-hours choice with no department")
    keys = dict(zip(state.offers, OFFER_KEYS))
    chosen = interpret_choice(turn, keys, answer_languages(state, rules))
    if chosen is None and "callback" in keys and interpret_yes_no(turn.speech, None, answer_languages(state, rules)):
        chosen = "callback"          # "yes, call me" to the offer of a call back
    if chosen == "report":
        return _start(replace(state, retries=0), rules, "caller chose to report it now")
    if chosen == "callback":
        return Decision(Callback(department.id, done=True), replace(state, step="done"), "caller asked for a call back")
    if chosen == "voicemail":
        return _closed_default(state, rules, "caller chose to leave a message")
    key = "no_input" if nothing_said(turn) else "no_match"
    name = localized(department.name, state.language, rules)
    again = Decision(ReportOffer(department.id, name, "", state.offers, reprompt=key), state, "")
    return reprompt_or(state, "no after-hours choice", again, _closed_default(state, rules, "no choice made"))


def _start(state: CallState, rules: Rules, reason: str) -> Decision:
    if state.intent and service_for_intent(rules, state.intent) is not None:
        return _ask_location(state, f"{reason}; the problem is known ({state.intent})")
    return _ask_problem(state, rules, reason)


# --- the problem ----------------------------------------------------------------------------
def _ask_problem(state: CallState, rules: Rules, reason: str, reprompt: str | None = None) -> Decision:
    services = department_services(rules, state.department)
    choices = tuple((str(i), s.name_in(state.language)) for i, s in enumerate(services, start=1))
    asked = replace(state, step="report_problem", intent=None, heard="", confidence=None)
    return Decision(ReportAsk("problem", choices, reprompt), asked, reason)


def _problem(state: CallState, turn: Turn, classification: Classification | None, rules: Rules) -> Decision:
    digits = (turn.digits or "").strip()
    services = department_services(rules, state.department)
    if digits:
        index = int(digits[:1]) - 1 if digits[:1].isdigit() else -1
        if 0 <= index < len(services):
            chosen = services[index]
            picked = replace(state, intent=chosen.intent, department=chosen.department, heard="", confidence=None)
            return _ask_location(picked, f"caller chose service {chosen.code} on the keypad")
    top = classification.top if classification is not None else None
    service = service_for_intent(rules, top.intent) if top is not None and top.intent else None
    if top is not None and service is not None:
        heard = replace(state, intent=service.intent, department=service.department,
                        heard=classification.text[:200] if classification else "", confidence=round(top.confidence, 3))
        doubtful = turn.asr_confidence is not None and turn.asr_confidence < rules.thresholds.confirm
        if top.confidence >= rules.thresholds.route and not doubtful:
            return _ask_location(heard, f"problem classified as {service.code} ({top.confidence:.2f})")
        if top.confidence >= rules.thresholds.confirm:
            intent = next((i for i in rules.intents if i.id == service.intent), None)
            description = localized(intent.description, state.language, rules) if intent else service.name_in(state.language)
            return Decision(Confirm(service.department, service.intent, description),
                            replace(heard, step="report_confirm"), f"problem may be {service.code} ({top.confidence:.2f}); confirming")
    key = "no_input" if nothing_said(turn) else "no_match"
    again = _ask_problem(state, rules, "", reprompt=key)
    return reprompt_or(state, "no reportable problem heard", again, _closed_default(state, rules, "no problem described"))


def _confirm(state: CallState, turn: Turn, rules: Rules) -> Decision:
    answer = interpret_yes_no(turn.speech, turn.digits, answer_languages(state, rules))
    if answer is True and state.intent:
        return _ask_location(replace(state, retries=0), "caller confirmed the problem")
    if answer is False:
        return _ask_problem(replace(state, retries=state.retries + 1), rules, "caller said no; asking again",
                            reprompt="no_match") if state.retries + 1 <= 2 else \
            _closed_default(state, rules, "caller said no again")
    intent = next((i for i in rules.intents if i.id == state.intent), None)
    description = localized(intent.description, state.language, rules) if intent else ""
    again = Decision(Confirm(state.department or "", state.intent, description,
                             reprompt="no_input" if nothing_said(turn) else "no_match"), state, "")
    return reprompt_or(state, "no yes/no answer", again, _closed_default(state, rules, "problem not confirmed"))


# --- the location ---------------------------------------------------------------------------
def _ask_location(state: CallState, reason: str, reprompt: str | None = None) -> Decision:
    return Decision(ReportAsk("location", reprompt=reprompt), replace(state, step="report_location", retries=0),
                    f"{reason}; asking where")


def _location(state: CallState, turn: Turn, rules: Rules) -> Decision:
    if interpret_choice(turn, {"dont_know": "1"}, answer_languages(state, rules)) == "dont_know":
        return _file(state, "", "caller does not know where", rules)
    # Anything else said is the location, as said: an address is free text (and `decide` already
    # looked for an emergency in it).
    if not (turn.digits or "").strip() and turn.speech and turn.speech.strip():
        return _file(state, " ".join(turn.speech.split())[:200], "location given", rules)
    key = "no_input" if nothing_said(turn) else "no_match"
    again = Decision(ReportAsk("location", reprompt=key), state, "")
    return reprompt_or(state, "no location heard", again, _file(state, "", "no location given", rules))


def _file(state: CallState, location: str, reason: str, rules: Rules) -> Decision:
    service = service_for_intent(rules, state.intent or "")
    if service is None:   # only reachable with rules reloaded mid-call: the intent lost its service
        return _closed_default(state, rules, f"{reason}; {state.intent!r} is no longer a service")
    description = state.heard or service.name_in(state.language)
    return Decision(FileReport(service.code, service.intent, service.department, description, location or None),
                    replace(state, step="report_filing", location=location), f"{reason}; filing {service.code}")


# --- the case number ------------------------------------------------------------------------
def _read(state: CallState, rules: Rules, *, first: bool, reprompt: str | None = None) -> ReadCase:
    # "Your report about a pothole is filed": the intent's description reads as a sentence does
    # (the service's name, "Pothole", is a title: it goes in the text message).
    intent = next((i for i in rules.intents if i.id == state.intent), None)
    service = service_for_intent(rules, state.intent or "")
    about = localized(intent.description, state.language, rules) if intent else \
        service.name_in(state.language) if service else ""
    return ReadCase(state.case, speak_case_number(state.case, state.language), about, state.can_text,
                    first=first, reprompt=reprompt)


def _case_read(state: CallState, turn: Turn, rules: Rules) -> Decision:
    languages = answer_languages(state, rules)
    offered = {k: v for k, v in CASE_KEYS.items() if k != "text" or state.can_text}
    chosen = interpret_choice(turn, offered, languages)
    if chosen is None and turn.speech:
        yes_no = interpret_yes_no(turn.speech, None, languages)
        chosen = {True: "text" if state.can_text else None, False: "finish"}.get(yes_no)   # type: ignore[arg-type]
    if chosen == "text":
        service = service_for_intent(rules, state.intent or "")
        return Decision(TextCase(state.case, service.name_in(state.language) if service else ""),
                        replace(state, step="done"), "caller asked for the case number by text")
    if chosen == "finish":
        return Decision(Goodbye("report_goodbye"), replace(state, step="done"), "caller finished")
    if chosen == "repeat":
        if state.retries + 1 >= MAX_CASE_READS:
            return Decision(Goodbye("report_goodbye"), replace(state, step="done"),
                            f"case number read {MAX_CASE_READS} times; goodbye")
        return Decision(_read(state, rules, first=False), replace(state, retries=state.retries + 1),
                        "caller asked to hear the case number again")
    # Silence is often a caller writing the number down: read it once more, then say goodbye.
    why = "no key pressed" if nothing_said(turn) else "no choice understood"
    if state.retries >= 1:
        return Decision(Goodbye("report_goodbye"), replace(state, step="done"), f"{why} after the case number; goodbye")
    return Decision(_read(state, rules, first=False, reprompt=None if nothing_said(turn) else "no_match"),
                    replace(state, retries=state.retries + 1), f"{why}; reading the case number again")
