"""Services citizens can report (intent → service code) and the case numbers of their requests.

Pure: no I/O, no clock; randomness comes in as an argument. The store (ivr.store.service_requests)
keeps the requests, the channels (voice, SMS, Open311) create them.

Case numbers are 7 digits, the last a Damm check digit. Damm catches every single wrong digit and
every swap of two neighbouring digits, the two mistakes people make reading a number back over the
phone or typing it into a text. The first digit is never 0, so a spreadsheet never eats it.
Six free digits give 900,000 numbers: the store picks at random and retries on a clash (unique
index), and moves to 9 digits when 7-digit numbers keep clashing (ivr.store.service_requests).
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Mapping

from ivr.routing.rules import Rules

#: Where a request came from.
CHANNELS = ("voice", "sms", "open311")
#: A request's life: open → acknowledged (someone has it) → closed; reopening is allowed.
STATUSES = ("open", "acknowledged", "closed")
CASE_LENGTH = 7
#: Lengths a case number may have: 7, or 9 once the 7-digit space is crowded.
CASE_LENGTHS = (7, 9)

# Damm's totally anti-symmetric quasigroup of order 10 (H. M. Damm, 2004).
_DAMM = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2), (7, 0, 9, 2, 1, 5, 4, 8, 6, 3), (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6), (6, 1, 2, 3, 0, 4, 5, 9, 7, 8), (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4), (8, 9, 4, 5, 3, 6, 2, 0, 1, 7), (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)

# Digits as people write them in a text or a recogniser transcribes them ("four eight two …").
_DIGIT_WORDS = {
    "zero": "0", "oh": "0", "o": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9",
    "cero": "0", "uno": "1", "un": "1", "una": "1", "dos": "2", "tres": "3", "cuatro": "4", "cinco": "5",
    "seis": "6", "siete": "7", "ocho": "8", "nueve": "9",
}
# What may surround or split the digits: spaces, dashes, dots, commas, '#', "case"/"caso" and "number".
_FILLER = {"case", "caso", "number", "numero", "número", "no", "num", "#"}
_TOKEN = re.compile(r"[#]|[^\W_]+", re.UNICODE)


@dataclass(frozen=True)
class Service:
    """What a citizen can report: Open311's service, one per intent that has a service_code."""
    code: str
    intent: str
    department: str
    name: Mapping[str, str]          # per language, e.g. {"en": "Pothole", "es": "Bache"}
    group: str                       # the department's name in the default language (Open311 group)
    keywords: tuple[str, ...] = field(default=(), compare=False)   # the intent's, default language

    def name_in(self, language: str) -> str:
        """The service's name for `language`, else the first one given."""
        return self.name.get(language) or next(iter(self.name.values()))


@dataclass(frozen=True)
class ServiceRequest:
    """A citizen's report, as stored (ivr.store.service_requests): a value, not a database row.

    A plain record here, beside `Service`, so the channels, the outbox and the Open311 server can
    all name it without importing each other or the store. Times are timezone-aware UTC.
    """
    id: int
    case_number: str
    source_key: str              # what made it ("voice:CA…", "sms:SM…", "open311:<key>:<token>"): unique
    channel: str                 # one of CHANNELS
    service_code: str
    service_name: str            # in the default language, as it was when the request was made
    intent: str
    department: str
    description: str             # in the citizen's words
    address: str | None
    lat: float | None
    long: float | None
    language: str
    contact_phone: str | None    # never shown unmasked outside the agents' views (ivr.store.privacy)
    contact_email: str | None
    text_consent: bool           # the citizen agreed to be texted about it
    call_sid: str | None
    media_url: str | None
    status: str                  # one of STATUSES
    status_notes: str            # the latest note (Open311's status_notes)
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class StatusChange:
    """One entry of a request's history: its status after the change, the note and who made it."""
    status: str
    note: str
    by: str
    at: datetime


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def _service(rules: Rules, intent_id: str) -> Service | None:
    intent = next((i for i in rules.intents if i.id == intent_id), None)
    if intent is None or intent.service_code is None:
        return None
    name = dict(intent.service_name) if intent.service_name else \
        {lang: _capitalised(text) for lang, text in intent.description.items()}
    department = rules.departments[intent.department]
    return Service(code=intent.service_code, intent=intent.id, department=intent.department, name=name,
                   group=department.name.get(rules.default_language, intent.department),
                   keywords=tuple(intent.keywords.get(rules.default_language, ())))


def service_for_intent(rules: Rules, intent_id: str) -> Service | None:
    """The service reported under `intent_id`; None for an informational or unknown intent."""
    return _service(rules, intent_id)


def all_services(rules: Rules) -> list[Service]:
    """Every service, in the rules file's order of intents."""
    return [s for s in (_service(rules, i.id) for i in rules.intents) if s is not None]


def service_by_code(rules: Rules, code: str) -> Service | None:
    """The service with this code (codes are unique: `ivr check` refuses duplicates)."""
    return next((s for s in all_services(rules) if s.code == code), None)


def _damm(digits: str) -> int:
    interim = 0
    for digit in digits:
        interim = _DAMM[interim][ord(digit) - 48]
    return interim


def new_case_number(rng: random.Random, length: int = CASE_LENGTH) -> str:
    """A random case number of `length` digits (the last is the check digit), never starting with 0."""
    if length not in CASE_LENGTHS:
        raise ValueError(f"case numbers have {' or '.join(map(str, CASE_LENGTHS))} digits, not {length}")
    body = str(rng.randint(1, 9)) + "".join(str(rng.randint(0, 9)) for _ in range(length - 2))
    return body + str(_damm(body))


def normalise_case_number(text: str) -> str | None:
    """The case number in `text` as plain digits, or None when it is not one (or a digit was misheard).

    Tolerant of how people write and say it: "482-7153", "# 482 7153", "case 4827153",
    "four eight two seven one five three", "cuatro ocho dos …". The check digit must match.
    """
    if not isinstance(text, str):
        return None
    digits = []
    for token in _TOKEN.findall(text.lower()):
        if token.isdigit():
            digits.append(token)
        elif token in _DIGIT_WORDS:
            digits.append(_DIGIT_WORDS[token])
        elif token not in _FILLER:
            return None
    number = "".join(digits)
    if len(number) not in CASE_LENGTHS or number[0] == "0" or _damm(number) != 0:
        return None
    return number


def is_case_number(text: str) -> bool:
    """True when `text` is a well-formed case number (spaces and dashes allowed)."""
    return normalise_case_number(text) is not None


def speak_case_number(case: str, language: str) -> str:
    """The case number for a voice to read digit by digit, with a pause before the last four:
    "4 8 2, 7 1 5 3". Digits are read in the call's `language` by its voice; the grouping is the
    same in English and Spanish (how both read phone numbers)."""
    number = normalise_case_number(case)
    if number is None:
        raise ValueError(f"not a case number: {case!r}")
    if not language:
        raise ValueError("speak_case_number needs the call's language")
    head, tail = number[:-4], number[-4:]
    return f"{' '.join(head)}, {' '.join(tail)}"
