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


#: The eight outcomes `ivr route --json` reports.
ROUTE_KINDS = ("transfer", "queue", "confirm", "menu", "operator", "voicemail", "after_hours", "emergency")
