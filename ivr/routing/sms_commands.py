"""Reading a text message: carrier keywords, the line's commands, the language, a location. Pure.

Carrier keywords follow Twilio's defaults (and the CTIA's): a text that is exactly STOP, STOPALL,
UNSUBSCRIBE, CANCEL, END or QUIT opts the number out; START, UNSTOP (and YES from an opted-out
number) opts it back in; HELP or INFO asks for help. Like Twilio, only a whole-message keyword
counts — "End of my street has a pothole" is a report, not an opt-out — except that a text
*starting* with STOP ("stop texting me") opts out too, since nobody reports a problem that way.
Spanish texters get the same with PARAR / BAJA / AYUDA.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from ivr.lang import Language
from ivr.routing.rules import Rules, Topic
from ivr.routing.sms_keywords import (LANGUAGE_OF_COMMAND, HELP_WORDS, START_WORDS, STATUS_WORDS, STOP_PREFIXES, STOP_WORDS,
                                     SUBSCRIBE_WORDS, TOPICS_WORDS, UNSUBSCRIBE_IF_TOPIC, UNSUBSCRIBE_WORDS)
from ivr.routing.topics import topic_word

#: A text longer than this is refused with a helpful reply (Twilio delivers up to 1600 characters).
MAX_BODY = 1600
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_ACCENTED_ES = re.compile(r"[ñáéíóúü¿¡]", re.IGNORECASE)
_HOUSE_NUMBER = re.compile(r"\b\d{1,6}[a-z]?\s+(?:[nsew]\.?\s+)?[^\W\d_][\w'.-]*", re.IGNORECASE | re.UNICODE)
_ORDINAL_STREET = re.compile(r"\b\d{1,3}(?:st|nd|rd|th)\b", re.IGNORECASE)
_COORDINATES = re.compile(r"-?\d{1,3}\.\d{3,}\s*,\s*-?\d{1,3}\.\d{3,}")
#: Words that put a place in a text when followed by a name: "corner of Oak and Elm", "calle Juárez".
PLACE_WORDS = {
    "en": ("corner of", "intersection of", "in front of", "across from", "outside", "near", "between",
           "block of", "alley behind", "behind"),
    "es": ("calle", "avenida", "av", "esquina", "cruce", "frente a", "cerca de", "entre", "colonia",
           "boulevard", "bulevar", "callejon", "camino", "carretera", "plaza", "parque"),
}


def fold(text: str) -> str:
    """Lowercase without accents, for comparing words ("Español" → "espanol")."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def words_of(text: str) -> list[str]:
    return _WORD.findall(fold(text))


@dataclass(frozen=True)
class Command:
    """What a text asks for, when it is a command rather than a report.

    kind: "stop" | "start" | "help" | "status" | "subscribe" | "unsubscribe" | "topics" | "language"
    argument: the case number text, the topic words, or the chosen language code.
    """
    kind: str
    argument: str = ""


def read_command(body: str, rules: Rules, *, opted_out: bool) -> Command | None:
    """The command this text is, or None when it is a report (or an answer to our question)."""
    words = words_of(body)
    if not words:
        return None
    whole = " ".join(words)
    first, rest = words[0], " ".join(words[1:])
    if whole in STOP_WORDS or first in STOP_PREFIXES and not _names_topic(rest, rules):
        return Command("stop")
    if whole in START_WORDS - {"yes"} or (opted_out and whole in START_WORDS | {"si"}):
        return Command("start")
    if whole in HELP_WORDS:
        return Command("help")
    chosen = language_named(whole, rules)
    if chosen:
        return Command("language", chosen)
    if first in STATUS_WORDS and rest and any(c.isdigit() for c in rest) or \
            first in STATUS_WORDS and not rest and first in ("status", "estado"):
        return Command("status", " ".join(body.split()[1:]))
    if first in SUBSCRIBE_WORDS:
        return Command("subscribe", rest)
    if first in UNSUBSCRIBE_WORDS and rest or first in UNSUBSCRIBE_IF_TOPIC and _names_topic(rest, rules):
        return Command("unsubscribe", rest)
    if whole in TOPICS_WORDS:
        return Command("topics")
    return None


def language_named(text: str, rules: Rules) -> str | None:
    """The language a whole text names ("ESPAÑOL", "english", "Spanish"), else None."""
    folded = " ".join(words_of(text))
    for code in rules.languages:
        if folded in {fold(name) for name in rules.language(code).called}:
            return code
    return None


def _names_topic(text: str, rules: Rules) -> bool:
    return bool(text) and find_topic(text, rules) is not None


def find_topic(text: str, rules: Rules) -> Topic | None:
    """The topic the words name (its id or a keyword in any language), else None."""
    wanted = topic_word(" ".join(words_of(text)))
    if not wanted:
        return None
    for topic in rules.topics:
        names = {topic.id} | {topic_word(k) for phrases in topic.keywords.values() for k in phrases} | \
            {topic_word(n) for n in topic.name.values()}
        if wanted in names:
            return topic
    return None


def detect_language(text: str, rules: Rules, *, margin: int = 1) -> str | None:
    """The offered language the text is most likely written in, or None when it gives no clue
    (or, with `margin`, when the best language is not ahead of every other by that many cues).

    Cues: each language's stop words (small words every sentence has: "the", "my" / "el", "mi"),
    the line's command words and topic keywords ("SUSCRIBIR AGUA"), and, for Spanish, its letters
    (ñ, accents, ¿ ¡). Words both languages share count for neither.
    """
    words = words_of(text)
    languages = [rules.language(code) for code in rules.languages]
    shared = frozenset.intersection(*(lang.stop_words for lang in languages)) if len(languages) > 1 else frozenset()
    scores = {lang.code: sum(1 for w in words if w in lang.stop_words and w not in shared) for lang in languages}
    # The line's own words are cues too: a command ("SUSCRIBIR") or a topic's keyword ("agua").
    topic_words = {(code, fold(k)) for t in rules.topics for code, phrases in t.keywords.items() for k in phrases}
    for word in words:
        by = {code for code, w in topic_words if w == word} | \
            ({LANGUAGE_OF_COMMAND[word]} if word in LANGUAGE_OF_COMMAND else set())
        if len(by) == 1 and next(iter(by)) in scores:
            scores[next(iter(by))] += 1
    if "es" in scores and _ACCENTED_ES.search(text):
        scores["es"] += 2
    best = max(scores.items(), key=lambda item: item[1], default=(None, 0))
    if best[1] == 0 or any(v > best[1] - margin for code, v in scores.items() if code != best[0]):
        return None
    return best[0]


def find_location(text: str, lang: Language) -> str | None:
    """The place a text names, as written ("120 Main St", "Oak and 5th", "calle Juárez 12"), or None.

    Cues: a house number followed by a name, a street word after a name ("Elm Street"), an
    ordinal street ("5th"), a place phrase ("corner of", "calle"), or coordinates.
    """
    coordinates = _COORDINATES.search(text)
    if coordinates:
        return coordinates.group(0)
    match = _HOUSE_NUMBER.search(text)
    if match:
        return _clause(text, match.start())
    folded = fold(text)
    tokens = [(m.group(0), m.start()) for m in _WORD.finditer(folded)]
    suffixes = lang.street_suffixes
    for i, (word, _start) in enumerate(tokens):
        if i > 0 and word in suffixes and tokens[i - 1][0] not in lang.not_a_street_name:
            return _clause(text, tokens[i - 1][1])
    for phrase in PLACE_WORDS.get(lang.code, ()):
        found = re.search(rf"\b{re.escape(phrase)}\b\s+\w", folded)
        if found:
            return _clause(text, found.start())
    ordinal = _ORDINAL_STREET.search(text)
    return _clause(text, ordinal.start()) if ordinal else None


def _clause(text: str, start: int) -> str:
    """From `start` to the end of the clause (at most 120 characters), trimmed."""
    end = len(text)
    for mark in ".!?\n;,":
        at = text.find(mark, start + 1)
        # a dot right after "St" or a digit is an abbreviation or a decimal, not the sentence's end
        while at != -1 and mark == "." and at + 1 < len(text) and not text[at + 1].isspace():
            at = text.find(mark, at + 1)
        if at != -1:
            end = min(end, at)
    return text[start:end].strip(" ,")[:120]


def body_problem(body: str, media: int) -> str | None:
    """Why a text cannot be read ("empty", "media_only", "too_long", "no_words"), or None."""
    text = body.strip()
    if not text:
        return "media_only" if media > 0 else "empty"
    if len(text) > MAX_BODY:
        return "too_long"
    if not any(c.isalnum() for c in text):
        return "no_words"
    return None
