"""Caller text (or digits) → ranked intents with confidence and a human explanation.

Pure: built once from `Rules` when they load (no training step, no network). Emergency cues are
checked first and win whenever one is heard; then every intent is scored from the rules'
keywords and examples (see `ivr.routing.index`). Confidence combines how much evidence the
best intent has with how far it is ahead of the best intent of another department.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from typing import Iterable

from ivr.lang import Language
from ivr.routing.cues import EmergencyCues
from ivr.routing.index import Hit, LanguageIndex, build_index, match
from ivr.routing.rules import Rules
from ivr.routing.text import fold, stem, surface_key, surface_tokens

EVIDENCE_SCALE = 2.5        # score at which evidence strength reaches 1 - 1/e (one clear keyword ≈ 0.9)
MAX_CANDIDATES = 5
MIN_RELATIVE_SCORE = 0.15   # alternatives weaker than this share of the best are noise
EMERGENCY_CLASS_MIN = 2.5   # example-only emergency evidence must be this strong to count
SIBLING_SHARE = 0.5         # share of the best sibling intent's score an intent is credited with
MERGED_MIN_LENGTH = 8       # "gatomuerto": shorter unknown words are more often just misspelt
MERGED_MIN_PART = 4         # each half a real word, not a fragment ("a" + "bandoned")


@dataclass(frozen=True)
class Candidate:
    intent: str | None         # intent id (None for the emergency pseudo-intent)
    department: str | None
    confidence: float          # 0..1
    explanation: str           # "matched 'pothole' (roads keyword)"


@dataclass(frozen=True)
class Classification:
    text: str
    language: str
    emergency: bool
    candidates: tuple[Candidate, ...]   # best first; empty when nothing matched
    explanation: str
    cues: tuple[str, ...] = ()          # emergency cue phrases heard (how well an emergency is supported)

    @property
    def top(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None

    @property
    def confidence(self) -> float:
        return self.candidates[0].confidence if self.candidates else 0.0


@dataclass(frozen=True)
class _Model:
    language: Language
    index: LanguageIndex
    cues: EmergencyCues


class Classifier:
    """Learns from the rules' keywords and examples; `classify` is pure and fast (p99 ≤ 1 ms)."""

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self._intents = rules.intents
        self._emergency_cls = len(rules.intents)
        self._departments = [i.department for i in rules.intents] + [None]
        self._models: dict[str, _Model] = {}
        for language in rules.languages:
            lang = rules.language(language)
            classes = [(i.department, list(i.keywords.get(language, ())), list(i.examples.get(language, ())))
                       for i in rules.intents]
            classes.append(("(emergency)", [], list(rules.emergency.examples.get(language, ()))))
            cues = EmergencyCues(lang, tuple(rules.emergency.phrases.get(language, ())),
                                 tuple(rules.emergency.together.get(language, ())))
            self._models[language] = _Model(lang, build_index(lang, classes), cues)

    def classify(self, text: str, language: str) -> Classification:
        """Rank the intents for what a caller said; `emergency` is set when any emergency cue is heard."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a string, not {type(text).__name__}")
        if language not in self._models:
            raise ValueError(f"unknown language {language!r}; the rules offer {', '.join(self.rules.languages)}")
        reading = self._read(text, language)
        if not reading.cues and not reading.scored:
            # A caller may answer in another offered language than the one chosen (or misdetected).
            for other in self.rules.languages:
                if other != language:
                    alt = self._read(text, other)
                    if alt.cues or alt.scored:
                        reading = alt
                        break
        return self._build(text, language, reading)

    def _read(self, text: str, language: str) -> _Reading:
        model = self._models[language]
        lang = model.language
        words = surface_tokens(text, lang)
        unigrams = model.index.unigrams
        positions, content, guessed = [], [], set()
        for i, word in enumerate(words):
            alike = lang.sound_alikes.get(word)
            if alike and stem(alike, lang) in unigrams and \
                    (word in lang.stop_words or stem(word, lang) not in unigrams):
                # "my car got toad": a word that means nothing here, sounding like one that does.
                positions.append(i)
                content.append(stem(alike, lang))
                guessed.add(i)
            elif word not in lang.stop_words:
                halves = _split_merged(word, lang, unigrams)
                for part in halves or (word,):
                    positions.append(i)
                    content.append(stem(part, lang))
        scores, hits, spans = match(model.index, [surface_key(w) for w in words], content, positions, guessed)
        cues = model.cues.find(words, spans, known=lambda word: stem(word, lang) in unigrams)
        cue_texts = list(dict.fromkeys(c.text for c in cues))
        over = model.cues.is_over(words) if cue_texts else None
        note = f"'{cue_texts[0]}' heard, but it is over ('{over}')" if over else ""
        pooled = _pool_siblings(scores, self._departments)
        scored = sorted(((c, score, hits[c]) for c, score in pooled.items()), key=lambda t: -t[1])
        return _Reading([] if over else cue_texts, scored, note)

    def _build(self, text: str, language: str, reading: _Reading) -> Classification:
        candidates: list[Candidate] = []
        scored = reading.scored
        emergency_score = next((s for c, s, _ in scored if c == self._emergency_cls), 0.0)
        intents = [(c, s, h) for c, s, h in scored if c != self._emergency_cls]
        best_intent = intents[0][1] if intents else 0.0
        example_emergency = (emergency_score >= EMERGENCY_CLASS_MIN and emergency_score > best_intent
                             and not reading.note)
        if reading.cues:
            why = "emergency: heard " + ", ".join(f"'{t}'" for t in reading.cues[:3])
            candidates.append(Candidate(None, None, 1.0, why))
        elif example_emergency:
            hits = next(h for c, _, h in scored if c == self._emergency_cls)
            why = "emergency: sounds like the emergency examples (" + _describe(hits, "emergency") + ")"
            candidates.append(Candidate(None, None, round(_confidence(emergency_score, best_intent), 3), why))
        listed: set[str | None] = set()
        for cls, score, hits in intents:
            department = self._departments[cls]
            if department in listed:
                continue  # one candidate per department: alternatives are other places to send the call
            if score < MIN_RELATIVE_SCORE * best_intent or len(listed) == MAX_CANDIDATES:
                break
            listed.add(department)
            rival = next((s for c, s, _ in intents if self._departments[c] != department), 0.0)
            candidates.append(Candidate(self._intents[cls].id, department,
                                        round(_confidence(score, rival), 3), _describe(hits, department)))
        explanation = candidates[0].explanation if candidates else "no department's keywords recognised"
        if reading.note:
            explanation = f"{explanation}; {reading.note}"
        return Classification(text, language, bool(reading.cues or example_emergency), tuple(candidates),
                              explanation, tuple(reading.cues))


@dataclass(frozen=True)
class _Reading:
    """What was heard in one language: emergency cues, scored classes, and a note for admins."""
    cues: list[str]
    scored: list[tuple[int, float, list[Hit]]]
    note: str


def _split_merged(word: str, lang: Language, unigrams: dict) -> tuple[str, str] | None:
    """Two known words a recogniser wrote as one ("gatomuerto" for "gato muerto"), or None.

    Only for a long word the rules do not know, and only when exactly one split makes two words
    they do know: a real word is never taken apart, and an ambiguous one is not guessed.
    """
    if len(word) < MERGED_MIN_LENGTH or stem(word, lang) in unigrams or word.isdigit():
        return None
    splits = [(word[:i], word[i:]) for i in range(MERGED_MIN_PART, len(word) - MERGED_MIN_PART + 1)
              if word[:i] not in lang.stop_words and word[i:] not in lang.stop_words
              and stem(word[:i], lang) in unigrams and stem(word[i:], lang) in unigrams]
    return splits[0] if len(splits) == 1 else None


def _pool_siblings(scores: list[float], departments: list[str | None]) -> dict[int, float]:
    """Credit each intent with SIBLING_SHARE of its best sibling's score: class → pooled score, for
    the classes that scored (in class order; there are hundreds, the others score nothing).

    Evidence spread over intents of one department ("dead" + "skunk") still points at it.
    """
    scored = [(cls, score) for cls, score in enumerate(scores) if score > 0]
    best: dict[str | None, list[float]] = {}
    for cls, score in scored:
        best.setdefault(departments[cls], []).append(score)
    top2 = {d: sorted(v, reverse=True)[:2] + [0.0] for d, v in best.items()}
    pooled: dict[int, float] = {}
    for cls, score in scored:
        first, second = top2[departments[cls]][:2]
        pooled[cls] = score + SIBLING_SHARE * (second if score == first else first)
    return pooled


def _confidence(score: float, rival: float) -> float:
    """Evidence strength × share of evidence against the best other department."""
    strength = 1.0 - math.exp(-score / EVIDENCE_SCALE)
    return strength * score / (score + rival)


def _describe(hits: list[Hit], department: str | None) -> str:
    best = sorted(hits, key=lambda h: -h.weight)[:3]
    label = {"keyword": "keyword", "phrase": "phrase", "example": "example word", "misheard": "probably misheard"}
    return "matched " + ", ".join(f"'{h.text}' ({department} {label[h.kind]})" for h in best)


_WORD = re.compile(r"[a-z0-9'-]+")


def interpret_yes_no(text: str | None, digits: str | None, languages: Iterable[Language]) -> bool | None:
    """"yes"/"sí"/1 → True, "no"/2 → False, anything else (or both at once) → None.

    Every language in `languages` (the rules' languages) is understood: callers mix them.
    """
    if digits:
        return {"1": True, "2": False}.get(digits.strip()[:1])
    if not text:
        return None
    languages = tuple(languages)
    folded = fold(text)
    spaced = " " + " ".join(_WORD.findall(folded)) + " "
    # A no phrase is matched as a prefix ("not right" in "not right at all"), a yes phrase whole.
    said_no = any(f" {p}" in spaced for lang in languages for p in lang.no.phrases)
    said_yes = any(f" {p} " in spaced for lang in languages for p in lang.yes.phrases)
    for word in _WORD.findall(folded):
        word = word.strip("'-")
        said_yes |= any(word in lang.yes.words for lang in languages)
        said_no |= any(word in lang.no.words for lang in languages)
    if said_no and said_yes:
        # "no that's right" is ambiguous, but "that's not right" / "no es correcto" is a no.
        despite = any(f" {p} " in spaced for lang in languages for p in lang.no.despite_yes)
        return False if despite else None
    return True if said_yes else False if said_no else None


def interpret_language(text: str | None, digits: str | None, rules: Rules) -> str | None:
    """"español"/"Spanish"/2 → "es", "English"/1 → "en", else None (digit n = the rules' n-th language).

    A language is chosen by any of its names in any language (its file's `names` and `also_called`).
    """
    if digits:
        d = digits.strip()[:1]
        if d.isdigit() and 1 <= int(d) <= len(rules.languages):
            return rules.languages[int(d) - 1]
        return None
    if not text:
        return None
    spaced = " " + " ".join(_WORD.findall(fold(text))) + " "
    chosen = [code for code in rules.languages
              if any(f" {name} " in spaced for name in rules.language(code).called)]
    return chosen[0] if len(chosen) == 1 else None
