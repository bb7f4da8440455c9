"""How the line speaks: numbers digit by digit, short pauses, slower where it counts. Pure.

Callers are often older and hear every prompt over an 8 kHz line, so:
- phone and case numbers are read digit by digit in their written groups ("555-0123" →
  "5 5 5, 0 1 2 3"), never as "five hundred fifty-five";
- a prompt is cut at sentence ends and commas; each piece keeps its punctuation (so a neural
  voice still rises at the comma) and is followed by a short silence: 0.25 s after a comma,
  0.45 s after a sentence;
- a sentence with a number in it (every menu option: "for trash, press 2"; queue positions;
  phone numbers; hours) is spoken about 12 % slower;
- every prompt starts with 0.1 s and ends with 0.35 s of silence, which is the pause between
  menu options (each option is its own file, played one after another);
- for engines called per piece, a number read digit by digit is said one digit at a time, with
  the group's pause after its last digit: every case number is then made of ten pieces per
  voice that are synthesised once (Speaker keeps them), not a new synthesis per call (Piper
  spent about a quarter of a second of CPU on each case number read back; now ~50 ms to put
  the pieces together).

Engines that cannot be called per piece cheaply (pyttsx3 runs a process per render) get the
whole text at the slower rate when any piece is slow; espeak pauses at commas by itself.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

from ivr.lang import builtin

LEAD_S = 0.10
TAIL_S = 0.35
COMMA_PAUSE_S = 0.25
SENTENCE_PAUSE_S = 0.45
#: Added between the digits of a number read digit by digit (each digit is its own piece). None:
#: a neural voice leaves about 0.2 s of silence around a lone digit (Piper's en_US-joe: 0.05-0.07 s
#: before, 0.15-0.21 s after), about the gap of a person reading digits out.
DIGIT_PAUSE_S = 0.0
#: Speaking-time factor for sentences with numbers in them (1.12 = 12 % slower).
SLOW = 1.12
#: Bumped when any rule here changes, so cached renderings of the old style are not reused.
VERSION = "style-1"

# A North American phone number, with or without separators and a leading 1 / +1.
_PHONE = re.compile(r"(?<![\w-])(?:\+?1[\s.-]?)?\(?\d{3}\)?[\s.-]?\d{3}[\s.-]?\d{4}(?![\w-])")
# Digits joined by hyphens or dots ("2024-00123", "555-0123"), or a run of 5+ digits:
# case and reference numbers. Decimal amounts ("2.5") and times ("8:30") are left alone.
_GROUPED = re.compile(r"(?<![\w.-])(?:[A-Za-z]{1,4}-)?\d+(?:-\d+)+(?![\w-])|(?<![\w.,])\d{5,}(?!\w|[.,]\d)")
# Where speech pauses: punctuation followed by a space ("4:30", "2.5" and "a,b" are not cut).
_CUT = re.compile(r"(?<=[,;:.!?])\s+")
# A piece that is only digits read one by one ("6 9 8," from `numbers_digit_by_digit`).
_DIGITS = re.compile(r"\d(?: \d)+[,;:.!?]?")


@dataclass(frozen=True)
class Piece:
    """One stretch of speech and the silence after it."""
    text: str
    slow: bool
    pause_after_s: float


def _spelled(groups: list[str]) -> str:
    return ", ".join(" ".join(group) for group in groups if group)   # "SR" too: letters, not "sir"


def _phone(match: re.Match[str]) -> str:
    digits = "".join(ch for ch in match.group(0) if ch.isdigit())
    groups = ([digits[0]] if len(digits) == 11 else []) + [digits[-10:-7], digits[-7:-4], digits[-4:]]
    return _spelled(groups)


def _grouped(match: re.Match[str]) -> str:
    token = match.group(0)
    if "-" in token:
        return _spelled(token.split("-"))
    return _spelled([token[i:i + 4] for i in range(0, len(token), 4)])   # a long run, in fours


def number_spans(text: str) -> list[str | tuple[str, str]]:
    """`text` cut into plain strings and (number, "telephone" | "digits") pairs: what SSML's
    <say-as> needs so Twilio's <Say> reads phone and case numbers the way rendered prompts do."""
    spans: list[tuple[int, int, str]] = [(m.start(), m.end(), "telephone") for m in _PHONE.finditer(text)]
    taken = [range(a, b) for a, b, _ in spans]
    spans += [(m.start(), m.end(), "digits") for m in _GROUPED.finditer(text)
              if not any(m.start() in r for r in taken)]
    result: list[str | tuple[str, str]] = []
    position = 0
    for start, end, kind in sorted(spans):
        if start > position:
            result.append(text[position:start])
        result.append((text[start:end], kind))
        position = end
    if position < len(text):
        result.append(text[position:])
    return result


def numbers_digit_by_digit(text: str) -> str:
    """Phone and case numbers as digits in their groups; other numbers are left as they are."""
    return _GROUPED.sub(_grouped, _PHONE.sub(_phone, text))


def spell_digits(number: str, groups: Mapping[int, tuple[int, ...]] | None = None) -> str:
    """A phone number read digit by digit, grouped like it is written: "555-0123" → "5 5 5, 0 1 2 3".

    A bare run of digits is grouped by its length with `groups` (a language file's `phone_groups`;
    the built-in English file's by default).
    """
    parts = ["".join(ch for ch in part if ch.isdigit()) for part in _split_groups(number, groups)]
    return ", ".join(" ".join(group) for group in parts if group)


def _split_groups(number: str, groups: Mapping[int, tuple[int, ...]] | None) -> list[str]:
    if any(sep in number for sep in " -.()"):
        return [p for p in number.replace("(", " ").replace(")", " ").replace(".", " ").replace("-", " ").split()]
    digits = "".join(ch for ch in number if ch.isdigit())
    sizes = (builtin("en").phone_groups if groups is None else groups).get(len(digits))
    if not sizes:
        return [digits]
    out, start = [], 0
    for size in sizes:
        out.append(digits[start:start + size])
        start += size
    return out


def pieces(text: str, *, digits_apart: bool = True) -> list[Piece]:
    """`text` (already through the lexicon and `numbers_digit_by_digit`) cut where it pauses, and
    numbers read digit by digit cut into one piece per digit unless `digits_apart` is False.

    Phoneme blocks (`[[ … ]]`) are never cut. A sentence is slow when any of it has a digit.
    """
    protected = re.sub(r"\[\[.*?\]\]", lambda m: m.group(0).replace(",", "\x00").replace(".", "\x01"), text)
    sentences: list[list[str]] = [[]]
    for piece in _CUT.split(protected.strip()):
        if piece:
            sentences[-1].append(piece)
            if piece[-1] in ".!?":
                sentences.append([])
    result: list[Piece] = []
    for sentence in sentences:
        slow = any(ch.isdigit() for piece in sentence for ch in piece)
        for piece in sentence:
            pause = SENTENCE_PAUSE_S if piece[-1] in ".!?" else COMMA_PAUSE_S if piece[-1] in ",;:" else 0.0
            restored = piece.replace("\x00", ",").replace("\x01", ".")
            if digits_apart and _DIGITS.fullmatch(restored):
                digits = restored.rstrip(",;:.!?").split()
                result.extend(Piece(digit, slow, DIGIT_PAUSE_S) for digit in digits[:-1])
                result.append(Piece(digits[-1], slow, pause))
            elif restored.strip(",;:.!? "):
                result.append(Piece(restored, slow, pause))
    return result
