"""(call state, caller's turn, classification, now, rules) → next action. Pure.

CONTRACT (implementation pending): see docs/architecture.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ivr.routing.classify import Classification
from ivr.routing.rules import Rules


@dataclass(frozen=True)
class CallState:
    """Everything the conversation needs between webhooks; stored in the DB as JSON."""
    step: str = "welcome"        # welcome | ask | confirm | menu | routed | done
    language: str = "en"
    retries: int = 0             # consecutive no-input / no-match at this step
    asks: int = 0                # times we asked "what are you calling about"
    menu_path: str = ""          # keypad digits chosen so far in the menu
    department: str | None = None  # routed or pending-confirmation department
    intent: str | None = None
    heard: str = ""              # what the caller said (for the agent's whisper)
    confidence: float | None = None
    tried: tuple[str, ...] = ()  # departments/lines already tried (busy policy never loops)


@dataclass(frozen=True)
class Turn:
    """What the caller did in answer to the last prompt. All None = no input (timeout)."""
    speech: str | None = None
    digits: str | None = None
    asr_confidence: float | None = None


@dataclass(frozen=True)
class Action:
    """Base of all actions. `kind` is the stable name used by `ivr route --json`."""
    kind: str = field(init=False, default="")


@dataclass(frozen=True)
class Decision:
    action: Action
    state: CallState
    reason: str                  # why, for admins: "confidence 0.91 ≥ route 0.75; roads open"


def decide(state: CallState, turn: Turn, classification: Classification | None,
           now: datetime, rules: Rules) -> Decision:
    raise NotImplementedError
