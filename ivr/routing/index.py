"""The classifier's model: weighted terms per class, learnt from the rules when they load.

A *class* is an intent, or the emergency pseudo-class (index `len(intents)`). Evidence is
TF-IDF-like: a stem that appears under few departments weighs more than "street", keywords weigh
more than words of example utterances, and a keyword phrase ("fire hydrant") outweighs its words
and claims them, so a word cannot count twice. Pure: built from `Rules`, no I/O.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import NamedTuple

from ivr.lang import Language
from ivr.routing.text import edits1, stem, stems, surface_key, surface_tokens

KEYWORD_WEIGHT = 3.0       # a keyword word is worth three example words
PHRASE_BONUS = 1.5         # a matched multi-word keyword beats the sum of its words
EXAMPLE_WEIGHT = 1.0
FUZZY_DISCOUNT = 0.55      # misheard ("pot hold") evidence counts, but less than a clean hit
MAX_PHRASE_GAP = 1         # "hole in [the] road", "power line [is] down"


@dataclass(frozen=True)
class Phrase:
    stems: tuple[str, ...]
    cls: int
    weight: float
    text: str                # the admin's wording, for the explanation
    whole: bool = False      # match every word as said, not just the content words


class Hit(NamedTuple):
    """One piece of evidence for a class: which words matched and how much they weigh.

    A NamedTuple, not a frozen dataclass: a classification makes dozens, and a frozen
    dataclass's __init__ costs several times a tuple's."""
    cls: int
    weight: float
    text: str
    kind: str                # "keyword" | "example" | "phrase" | "misheard"


@dataclass
class LanguageIndex:
    """Everything needed to score text in one language."""
    language: Language
    n_classes: int
    unigrams: dict[str, list[tuple[int, float, str, str]]] = field(default_factory=dict)
    phrases: dict[str, list[Phrase]] = field(default_factory=dict)   # by first content stem
    wordings: dict[str, list[Phrase]] = field(default_factory=dict)  # by first surface word
    deletes: dict[str, set[str]] = field(default_factory=dict)
    fuzzy_cache: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def vocabulary_match(self, token: str) -> tuple[str, ...]:
        """Known stems within about one edit of `token` (ASR and spelling slips: "pothold", "garbadge")."""
        cached = self.fuzzy_cache.get(token)
        if cached is not None:
            return cached
        found: set[str] = set()
        if len(token) >= 6:  # shorter words have too many real neighbours ("heard" ≠ "hoard")
            for variant in edits1(token) | {token}:
                found |= self.deletes.get(variant, set())
            found = {v for v in found if abs(len(v) - len(token)) <= 1 and len(v) >= 6 and v[0] == token[0]}
        result = tuple(sorted(found))
        if len(self.fuzzy_cache) < 100_000:  # bounded: callers can say anything
            self.fuzzy_cache[token] = result
        return result


def _idf(df: int, n_departments: int) -> float:
    return math.log(1.0 + n_departments / df)


def build_index(language: Language, classes: list[tuple[str, list[str], list[str]]]) -> LanguageIndex:
    """Index one language. `classes` holds (department, keywords, examples) per class."""
    keyword_forms: list[list[tuple[tuple[str, ...], tuple[str, ...], str]]] = []
    example_counts: list[dict[str, tuple[int, str]]] = []
    departments_with: dict[str, set[str]] = defaultdict(set)
    wordings: dict[tuple[str, ...], set[str]] = defaultdict(set)
    for department, keywords, examples in classes:
        forms = []
        for keyword in keywords:
            words = surface_tokens(keyword, language)
            content = tuple(stems(words, language))
            if words:
                full = tuple(surface_key(w) for w in words)
                forms.append((content, full, keyword))
                wordings[full].add(department)
                for s in content:
                    departments_with[s].add(department)
        keyword_forms.append(forms)
        counts: dict[str, tuple[int, str]] = {}
        for word in (w for example in examples for w in _content_words(example, language, strict=True)):
            s = stem(word, language)
            n, _ = counts.get(s, (0, word))
            counts[s] = (n + 1, word)
            departments_with[s].add(department)
        example_counts.append(counts)

    n_departments = len({c[0] for c in classes})
    idf = {s: _idf(len(d), n_departments) for s, d in departments_with.items()}
    index = LanguageIndex(language=language, n_classes=len(classes))
    best: dict[str, dict[int, tuple[float, str, str]]] = defaultdict(dict)
    for cls, forms in enumerate(keyword_forms):
        for content, full, text in forms:
            if len(full) == 1:
                if content:  # a lone stop word ("someone") can never be heard: stop words are dropped
                    _keep_best(best[content[0]], cls, KEYWORD_WEIGHT * idf[content[0]], text, "keyword")
                continue
            # Several content words match in any order around each other ("license for my business");
            # a wording whose meaning rests on small words ("broke into", "cracked can") must match as said.
            whole = len(content) < 2
            seq = full if whole else content
            # A wording that rests on small words is as specific as the wording itself, not its one word.
            specificity = _idf(len(wordings[full]), n_departments) if whole else sum(idf[s] for s in content)
            weight = PHRASE_BONUS * KEYWORD_WEIGHT * specificity / math.sqrt(len(seq))
            (index.wordings if whole else index.phrases).setdefault(seq[0], []).append(
                Phrase(seq, cls, weight, text, whole))
            for s, word in zip(content, _content_words(text, language)):
                # A phrase's words also count alone, as example-strength evidence.
                _keep_best(best[s], cls, EXAMPLE_WEIGHT * idf[s], word, "example")
    for cls, counts in enumerate(example_counts):
        for s, (n, word) in counts.items():
            _keep_best(best[s], cls, EXAMPLE_WEIGHT * idf[s] * (0.7 + 0.3 * min(n, 3) / 3), word, "example")
    for s, per_class in best.items():
        index.unigrams[s] = [(cls, w, text, kind) for cls, (w, text, kind) in per_class.items()]
        if len(s) >= 6:
            for variant in edits1(s) | {s}:
                index.deletes.setdefault(variant, set()).add(s)
    return index


def _content_words(text: str, language: Language, strict: bool = False) -> list[str]:
    words = surface_tokens(text, language)
    content = [w for w in words if w not in language.stop_words]
    return content if content or strict else words


def _keep_best(per_class: dict[int, tuple[float, str, str]], cls: int, weight: float, text: str, kind: str) -> None:
    if weight > per_class.get(cls, (0.0, "", ""))[0]:
        per_class[cls] = (weight, text, kind)


def match(index: LanguageIndex, words: list[str], content_stems: list[str], content_positions: list[int],
          guessed: set[int] | frozenset[int] = frozenset()) -> tuple[list[float], list[list[Hit]], list[set[int]]]:
    """Score a caller's stems against every class.

    `words` holds every word said (see `surface_key`), `content_stems` the stems of the words at
    `content_positions`, the ones that are not stop words. Positions in `guessed` hold a sound-alike
    of what was written: their words count as misheard. Returns (scores, evidence per class,
    spans of the matched phrases as word positions).
    """
    scores = [0.0] * index.n_classes
    hits: list[list[Hit]] = [[] for _ in range(index.n_classes)]
    claimed: dict[int, set[int]] = {}
    spans: list[set[int]] = []
    content = _with_compounds(index, content_stems, [words[p] for p in content_positions])
    views = ((index.phrases, content, content_positions), (index.wordings, words, list(range(len(words)))))
    found_phrases: list[tuple[Phrase, set[int]]] = []
    for phrases, tokens, where in views:
        said = set(tokens)
        for pos, tok in enumerate(tokens):
            for phrase in phrases.get(tok, ()):
                if not said.issuperset(phrase.stems):
                    continue   # a word of it was not said at all: no need to look for it near here
                found = _find_phrase(tokens, pos, phrase.stems, ordered=phrase.whole)
                if found is not None:
                    found_phrases.append((phrase, {where[p] for p in found}))
    # Heaviest first; an overlapping phrase of the same class counts only for the words it adds
    # ("pay water" + "water bill" = "pay water bill", not two waters).
    for phrase, span in sorted(found_phrases, key=lambda f: -f[0].weight):
        taken = claimed.setdefault(phrase.cls, set())
        new = len(span - taken) / len(span)
        if new > 0:
            scores[phrase.cls] += phrase.weight * new
            hits[phrase.cls].append(Hit(phrase.cls, phrase.weight * new, phrase.text, "phrase"))
            taken.update(span)
        spans.append(span)
    seen: set[tuple[int, str]] = set()
    for pos, tok in zip(content_positions, content):
        if not tok:
            continue
        entries = index.unigrams.get(tok)
        discount, kind_override = (FUZZY_DISCOUNT, "misheard") if pos in guessed else (1.0, None)
        if entries is None:
            matches = index.vocabulary_match(tok)
            if not matches:
                continue
            entries = [e for m in matches for e in index.unigrams[m]]
            discount, kind_override = FUZZY_DISCOUNT, "misheard"
        for cls, weight, text, kind in entries:
            if pos in claimed.get(cls, ()) or (cls, text) in seen:
                continue  # the phrase already counted this word; a repeated word counts once
            seen.add((cls, text))
            scores[cls] += weight * discount
            hits[cls].append(Hit(cls, weight * discount, text, kind_override or kind))
    return scores, hits, spans


def _with_compounds(index: LanguageIndex, tokens: list[str], words: list[str]) -> list[str]:
    """Join split compounds the rules know as one word ("pot hole" → "pothole")."""
    out = list(tokens)
    for i in range(len(tokens) - 1):
        if not out[i] or not out[i + 1]:
            continue
        joined = stem(words[i] + words[i + 1], index.language)
        if joined in index.unigrams:
            # Keep positions stable (callers map them back to words): blank the second half.
            out[i], out[i + 1] = joined, ""
    return out


def _find_phrase(tokens: list[str], start: int, seq: tuple[str, ...], ordered: bool) -> set[int] | None:
    """Positions of `seq`'s words near `start` (in order when `ordered`), or None.

    Callers reorder content words ("permit for parking", "the light on the street"): unordered,
    every word must appear within a window of len(seq) + MAX_PHRASE_GAP words around `start`.
    Ordered, each word follows the previous one with at most MAX_PHRASE_GAP words between.
    """
    if ordered:
        span, pos = {start}, start
        for want in seq[1:]:
            pos = next((p for p in range(pos + 1, min(pos + 2 + MAX_PHRASE_GAP, len(tokens)))
                        if tokens[p] == want), -1)
            if pos < 0:
                return None
            span.add(pos)
        return span
    reach = len(seq) + MAX_PHRASE_GAP
    window = range(max(0, start - reach + 1), min(len(tokens), start + reach))
    span = {start}
    for want in seq[1:]:
        pos = next((p for p in window if p not in span and tokens[p] == want), -1)
        if pos < 0:
            return None
        span.add(pos)
    if max(span) - min(span) >= reach:
        return None
    if len(seq) == 2 and min(span) < start - 1:
        return None  # a reversed pair must be adjacent: "license business", not "tree roots fall"
    return span
