"""The admin's routing_rules.yaml as frozen dataclasses.

Types only: `ivr.routing.load` (`load_rules(path)` / `parse_rules(text, path)`) validates the
YAML and builds them. Pure data, no I/O.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, time
from typing import Mapping, Protocol

from ivr.lang import Language, builtin
from ivr.routing.problems import Problem

#: Text per language code, e.g. {"en": "Streets and Roads", "es": "Calles y Carreteras"}.
Localized = Mapping[str, str]
#: Phrases per language code.
Phrases = Mapping[str, tuple[str, ...]]


@dataclass(frozen=True)
class TimeRange:
    """One opening window on a weekday, local time of the department. `closes` may be 24:00 → time.max."""
    opens: time
    closes: time


@dataclass(frozen=True)
class Closure:
    """A holiday (whole day) or a partial closure ("2026-12-24 from 12:00")."""
    day: date
    start: time | None = None  # None: closed from midnight
    end: time | None = None    # None: closed until midnight
    name: str = ""             # as written, or the first language's when localized
    names: tuple[tuple[str, str], ...] = ()   # (language, name) pairs when the name is localized

    def name_in(self, language: str) -> str:
        """What to call the closure to a caller speaking `language`."""
        return dict(self.names).get(language, self.name)


class Holidays(Protocol):
    """The city's recurring holidays, every year (`ivr.routing.holiday_calendar.HolidayCalendar`).

    A protocol rather than an import: the calendar builds `Closure`s from this module, so importing
    it here would make a cycle.
    """

    def closures_on(self, day: date) -> tuple[Closure, ...]: ...

    def closures_between(self, first: date, last: date) -> list[Closure]: ...


@dataclass(frozen=True)
class Fallback:
    """What a department does when it cannot take the call now (closed, busy, no answer).

    action: "queue" | "voicemail" | "callback" | "department" | "transfer"
    target: the department id for "department", an E.164 number / SIP URI for "transfer", else None.
    """
    action: str
    target: str | None = None


@dataclass(frozen=True)
class NotifyTarget:
    """Where a department's new service requests are sent (`departments.<id>.notify`).

    kind: "email" (target: an address), "webhook" (target: an https URL; the JSON body is signed
    with HMAC-SHA256 using the secret in the environment variable `secret_env`) or "open311"
    (target: an upstream GeoReport v2 base URL; `api_key_env` names the variable holding its
    api_key; `service_code` overrides ours upstream; `jurisdiction_id` is sent when given).
    Secrets are never in the rules file, only the names of the variables that hold them.
    """
    kind: str
    target: str
    secret_env: str | None = None
    api_key_env: str | None = None
    service_code: str | None = None
    jurisdiction_id: str | None = None


@dataclass(frozen=True)
class Department:
    id: str
    name: Localized
    line: str                  # E.164 number or sip: URI the call is transferred to
    queue: str                 # Twilio queue name used when the call is queued
    answer: str                # "transfer" or "queue": how an open department takes calls
    timezone: str              # IANA zone, e.g. "America/Chicago"
    hours: Mapping[int, tuple[TimeRange, ...]]  # 0 = Monday … 6 = Sunday; missing day = closed
    closures: tuple[Closure, ...] = ()        # dated closures (its own and the city's one-off days)
    holidays: Holidays | None = None  # the city's recurring holidays, every year (None: not observed)
    observes_holidays: bool = True             # False: open on the city's holidays (set in the rules)
    when_closed: Fallback = Fallback("voicemail")
    when_busy: Fallback = Fallback("queue")     # busy, no-answer and failed dials
    whisper: str = ""          # template for the agent: {department} {heard} {confidence} {language} {caller}
    notify: tuple[NotifyTarget, ...] = ()      # where its new service requests go (ivr.outbox)


@dataclass(frozen=True)
class Intent:
    id: str
    department: str
    description: Localized     # "a problem with a street light" — used in "It sounds like …"
    keywords: Phrases          # strong single words / short phrases
    examples: Phrases          # whole example utterances
    #: The service a citizen can report under this intent (a service request's code, Open311's
    #: service_code); None for informational intents (`service_code: none`: bills, hours …).
    service_code: str | None = None
    service_name: Localized | None = None   # None: the description, capitalised (ivr.routing.services)


@dataclass(frozen=True)
class Topic:
    """Something citizens subscribe to for alerts ("SUBSCRIBE WATER") and that callers hear about.

    An alert on a topic is heard first by callers whose request is one of its `intents`; texts
    about it are handled by `department`.
    """
    id: str
    name: Localized            # "water service" / "servicio de agua": what texts call it
    keywords: Phrases          # SMS words per language ("water" / "agua"); the id always works too
    intents: tuple[str, ...]   # intent ids this topic covers
    department: str            # the department that handles it


@dataclass(frozen=True)
class MenuOption:
    """A keypad menu entry: either a department (leaf) or a sub-menu of options."""
    digit: str
    label: Localized
    department: str | None = None
    options: tuple["MenuOption", ...] = ()


@dataclass(frozen=True)
class Thresholds:
    """confidence ≥ route → route directly; ≥ confirm → confirm first; below → keypad menu."""
    route: float
    confirm: float


@dataclass(frozen=True)
class Emergency:
    phrases: Phrases
    examples: Phrases
    advisory: Localized        # "If this is an emergency, hang up and dial 911."
    transfer: str | None = None  # optional emergency line offered after the advisory
    #: Facts that are ordinary alone but an emergency together, per language: "stuck + water is
    #: coming in" (each entry's parts joined by " + "; every part must be heard, in any order).
    together: Phrases = field(default_factory=dict)


@dataclass(frozen=True)
class Rules:
    languages: tuple[str, ...]          # ("en", "es"); first is the default
    operator: str                       # department id that "0" reaches
    departments: Mapping[str, Department]
    intents: tuple[Intent, ...]
    menu: tuple[MenuOption, ...]        # top level; 0 = operator and 9 = repeat are reserved
    thresholds: Thresholds
    emergency: Emergency
    topics: tuple[Topic, ...] = ()      # alert topics, in file order (optional section)
    source: str = field(default="", compare=False)  # path it was loaded from
    #: Valid but probably not meant (FILE:LINE): `ivr check` prints them, the line still serves.
    warnings: tuple[Problem, ...] = field(default=(), compare=False, repr=False)
    #: What the line knows about each language (ivr/lang/<code>.yaml, or lang/ beside the rules).
    lang: Mapping[str, Language] = field(default_factory=dict, compare=False, repr=False)

    @property
    def default_language(self) -> str:
        return self.languages[0]

    def language(self, code: str) -> Language:
        """The language file for `code`: the one loaded with the rules, else the built-in one."""
        found = self.lang.get(code)
        return found if found is not None else builtin(code)

    def intent(self, intent_id: str) -> Intent:
        """The intent with this id (StopIteration if there is none)."""
        return next(i for i in self.intents if i.id == intent_id)

    def topic(self, topic_id: str) -> Topic | None:
        """The topic with this id, or None."""
        return next((t for t in self.topics if t.id == topic_id), None)

    def topic_for_intent(self, intent_id: str | None) -> Topic | None:
        """The topic covering this intent (validation keeps it to one), or None."""
        return next((t for t in self.topics if intent_id in t.intents), None) if intent_id else None

    def menu_path(self, department_id: str) -> str:
        """Keypad digits that reach a department, space-separated ("1 2"); "0" for the operator.

        "" when the department is not in the menu (validation makes that impossible for
        loaded rules).
        """
        if department_id == self.operator:
            return "0"
        for option in self.menu:
            if option.department == department_id:
                return option.digit
            for sub in option.options:
                if sub.department == department_id:
                    return f"{option.digit} {sub.digit}"
        return ""
