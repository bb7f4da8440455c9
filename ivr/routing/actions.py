"""What the line does next: one small frozen dataclass per action. Pure data.

`kind` is the stable name `ivr route --json` reports (transfer, queue, confirm, menu, operator,
voicemail, after_hours, emergency) plus the in-call ones (welcome, ask, callback, goodbye).
Texts that depend on the caller's language (department names, menu labels, hours) are already
localised here, so rendering needs no rules.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Action:
    """Base of all actions. `kind` is the stable name used by `ivr route --json`."""
    kind: str = field(init=False, default="")


@dataclass(frozen=True)
class Welcome(Action):
    """Greeting with the emergency advisory, then the language choice."""
    advisory: str
    kind: str = field(init=False, default="welcome")


@dataclass(frozen=True)
class Ask(Action):
    """"What are you calling about?" — `prompt` is ask/ask_again; `reprompt` (no_input/no_match) first."""
    prompt: str = "ask"
    reprompt: str | None = None
    kind: str = field(init=False, default="ask")


@dataclass(frozen=True)
class Confirm(Action):
    """"It sounds like {description}. Is that right?" for a pending department."""
    department: str
    intent: str | None
    description: str
    reprompt: str | None = None
    kind: str = field(init=False, default="confirm")


@dataclass(frozen=True)
class Menu(Action):
    """Keypad menu at `path` ("" = top); `options` are (digit, label) pairs already localised."""
    path: str
    options: tuple[tuple[str, str], ...]
    reprompt: str | None = None
    kind: str = field(init=False, default="menu")


@dataclass(frozen=True)
class Transfer(Action):
    """Dial `line` for `department`; the agent hears a whisper first."""
    department: str
    name: str
    line: str
    kind: str = field(init=False, default="transfer")


@dataclass(frozen=True)
class Queue(Action):
    """Hold the caller in Twilio queue `queue` for `department`."""
    department: str
    name: str
    queue: str
    kind: str = field(init=False, default="queue")


@dataclass(frozen=True)
class Operator(Action):
    """Reach a person: dial `line`, or hold in `queue` when the operator desk answers by queue."""
    department: str
    line: str
    queue: str | None = None
    kind: str = field(init=False, default="operator")


@dataclass(frozen=True)
class Voicemail(Action):
    """Record a message for `department` (stored with a recording status callback)."""
    department: str
    name: str
    kind: str = field(init=False, default="voicemail")


@dataclass(frozen=True)
class AfterHours(Action):
    """The department is closed: say its hours, then `then` = voicemail | callback | goodbye."""
    department: str
    name: str
    hours: str
    then: str = "voicemail"
    kind: str = field(init=False, default="after_hours")


@dataclass(frozen=True)
class Emergency(Action):
    """Advisory first; then dial `dial` (emergency line, or the operator line directly), never a queue.

    `dial` None means nothing is left to try: the advisory is repeated and the call ends.
    """
    advisory: str
    dial: str | None
    announce: str | None = None   # prompt key before dialling: emergency_transfer | operator
    kind: str = field(init=False, default="emergency")


@dataclass(frozen=True)
class Callback(Action):
    """Offer a call back (`done` False) or confirm it was requested (`done` True, stored as a Message)."""
    department: str
    done: bool = False
    kind: str = field(init=False, default="callback")


@dataclass(frozen=True)
class Goodbye(Action):
    """Say `prompt` (then goodbye) and hang up."""
    prompt: str = "goodbye"
    kind: str = field(init=False, default="goodbye")


@dataclass(frozen=True)
class ReportOffer(Action):
    """After hours, beside a message or a call back: "report it now". `offers` in key order 1, 2, 3
    (report, callback, voicemail); `hours` is "" when the offer is repeated (said once is enough)."""
    department: str
    name: str
    hours: str
    offers: tuple[str, ...]
    reprompt: str | None = None
    kind: str = field(init=False, default="after_hours")


@dataclass(frozen=True)
class ReportAsk(Action):
    """A question of the after-hours report: `what` is "problem" (with `choices`, the department's
    services as (key, name) for the keypad) or "location"."""
    what: str
    choices: tuple[tuple[str, str], ...] = ()
    reprompt: str | None = None
    kind: str = field(init=False, default="report_ask")


@dataclass(frozen=True)
class FileReport(Action):
    """File the service request. The edge does it (it has the store) and hands the case number to
    `ivr.routing.report.filed`, which decides what the caller hears; never rendered itself."""
    service: str                 # the service code
    intent: str
    department: str
    description: str             # in the caller's words (the service's name when chosen by key)
    address: str | None          # None: the caller did not know
    kind: str = field(init=False, default="report")


@dataclass(frozen=True)
class ReadCase(Action):
    """The case number, read digit by digit (`spoken`), then: star to repeat, 1 to get it by text
    (`can_text`), 2 to finish. `first` adds "your report about {service} is filed"."""
    case: str
    spoken: str
    service: str                 # what was reported, as said in a sentence ("a pothole")
    can_text: bool
    first: bool = True
    reprompt: str | None = None
    kind: str = field(init=False, default="case")


@dataclass(frozen=True)
class TextCase(Action):
    """Text the case number to the caller (the edge enqueues it, once per call), then goodbye."""
    case: str
    service: str
    kind: str = field(init=False, default="text_case")


@dataclass(frozen=True)
class AlertNotice(Action):
    """An active alert for what the caller is calling about ("We know about …"), then: 1 for
    something else, 2 for updates by text (`can_subscribe`)."""
    alert_id: int
    topic: str
    text: str
    can_subscribe: bool = False
    reprompt: str | None = None
    kind: str = field(init=False, default="alert")


@dataclass(frozen=True)
class Subscribe(Action):
    """Subscribe the caller's number to `topic` (the edge does it), thank them and end the call."""
    topic: str
    name: str                    # the topic's name in the caller's language
    kind: str = field(init=False, default="subscribe")


#: The eight outcomes `ivr route --json` reports.
ROUTE_KINDS = ("transfer", "queue", "confirm", "menu", "operator", "voicemail", "after_hours", "emergency")
