"""What is kept between webhooks (`CallState`), what the caller did (`Turn`) and what to do next
(`Decision`). Pure data: `decide` and `menu` both build these, so they live apart from both.
"""
from __future__ import annotations

from dataclasses import dataclass

from ivr.routing.actions import Action


@dataclass(frozen=True)
class CallState:
    """Everything the conversation needs between webhooks; stored in the DB as JSON."""
    #: welcome | ask | confirm | menu | callback | routed | queued | voicemail | emergency | done, and
    #: after hours: after_hours (report/message/call back) | report_problem | report_confirm |
    #: report_location | report_done; alert (an active alert was heard)
    step: str = "welcome"
    language: str = "en"
    retries: int = 0             # consecutive no-input / no-match at this step
    asks: int = 0                # times we asked "what are you calling about"
    menu_path: str = ""          # keypad digits chosen so far in the menu
    department: str | None = None  # routed or pending-confirmation department
    intent: str | None = None
    heard: str = ""              # what the caller said (for the agent's whisper)
    confidence: float | None = None
    tried: tuple[str, ...] = ()  # departments/lines already tried (busy policy never loops)
    seq: int = 0                 # webhook step counter; in every action URL so retries are recognised
    prompt: str = ""             # the words of the last question asked, stored with the answer's turn
    offers: tuple[str, ...] = ()  # after hours: what the caller may choose (report, callback, voicemail)
    location: str | None = None  # the report's location as said; "" = the caller does not know
    case: str = ""               # the case number of the service request filed on this call
    can_text: bool = False       # the caller's number can receive a text (set when the case is filed)
    alerts_heard: tuple[int, ...] = ()  # ids of the alerts this caller already heard (never twice)
    alert_then: str = ""         # after an alert, "something else" continues with: route | confirm


@dataclass(frozen=True)
class Turn:
    """What the caller did in answer to the last prompt. All None = no input (timeout)."""
    speech: str | None = None
    digits: str | None = None
    asr_confidence: float | None = None
    emergency_heard: str | None = None   # why the recogniser's other readings say emergency (ivr.speech.emergency)
    #: The caller spoke but no transcript came in time ("busy", "late", "failed"): a reason to
    #: ask again ("please say that again"), not the silence of no input.
    unheard: str | None = None


@dataclass(frozen=True)
class Notice:
    """An active alert for what the caller is calling about (the edge looks it up; the core decides
    whether the caller hears it). `text` is already in the caller's language."""
    alert_id: int
    topic: str
    name: str                     # the topic's name in the caller's language ("water service")
    text: str
    can_subscribe: bool = False   # the caller's number can get texts about the topic


@dataclass(frozen=True)
class Decision:
    """The next action, the state to store with it, and the reason an admin can read."""
    action: Action
    state: CallState
    reason: str                  # why, for admins: "confidence 0.91 ≥ route 0.75; roads open"
