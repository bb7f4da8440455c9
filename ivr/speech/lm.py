"""A domain language model for the city line, built from the routing rules. Pure text in, text out.

The embedded recogniser is only as good as its idea of what callers say. Instead of a general
English model (70 000 words, most of them never said to a 311 line) it gets a small trigram model
over the rules' keywords and examples, the emergency phrases, department names and the admin's
extra sentences in `grammars/<lang>/lm_extra.txt`. Smoothing is interpolated absolute discounting
with a uniform floor, so unseen word orders stay possible; the ARPA text is what pocketsphinx loads.
"""
from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from typing import Iterable

from ivr.routing.rules import Rules

_DISCOUNT = 0.6          # absolute discount per seen n-gram; 0.5–0.8 suits tiny corpora
_UNIFORM_WEIGHT = 0.02   # share of unigram mass spread evenly, so every word stays reachable
_WORD = re.compile(r"[a-z0-9']+")
_DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def normalize(text: str) -> list[str]:
    """Lower-case words as a recogniser emits them: digits spelled out, punctuation dropped."""
    words: list[str] = []
    for token in _WORD.findall(text.lower().replace("’", "'")):
        if token.isdigit():
            words.extend(_DIGIT_WORDS[int(ch)] for ch in token)
        else:
            words.append(token.strip("'"))
    return [w for w in words if w]


def rules_corpus(rules: Rules, language: str) -> list[str]:
    """Every sentence the rules know for `language`, phrases repeated by how telling they are."""
    sentences: list[str] = []
    for intent in rules.intents:
        sentences += list(intent.examples.get(language, ()))
        # Keywords are the words that decide routing: seen twice, and inside a carrier phrase
        # so "pothole" is also likely after "a" and before "on".
        for keyword in intent.keywords.get(language, ()):
            sentences += [keyword, f"there is a {keyword}", f"i'm calling about the {keyword}"]
    sentences += list(rules.emergency.phrases.get(language, ()))
    sentences += list(rules.emergency.examples.get(language, ()))
    for department in rules.departments.values():
        if language in department.name:
            sentences += [department.name[language], f"i need {department.name[language]}"]
    sentences += _menu_labels(rules.menu, language)
    return sentences


def _menu_labels(options: Iterable, language: str) -> list[str]:
    labels: list[str] = []
    for option in options:
        if language in option.label:
            labels.append(option.label[language])
        labels += _menu_labels(option.options, language)
    return labels


def corpus_hash(sentences: Iterable[str]) -> str:
    """A short stable key for a corpus, used to cache built models on disk."""
    digest = hashlib.sha256("\n".join(sentences).encode("utf-8"))
    digest.update(f"d={_DISCOUNT};u={_UNIFORM_WEIGHT}".encode())
    return digest.hexdigest()[:16]


def build_arpa(sentences: Iterable[str], vocabulary: set[str] | None = None, order: int = 3) -> str:
    """Train a backoff n-gram model on `sentences` and return it in ARPA format.

    Words outside `vocabulary` (the recogniser's pronunciation dictionary) cannot be decoded, so
    they split the sentence instead of teaching the model n-grams across a hole.
    """
    counts: list[Counter[tuple[str, ...]]] = [Counter() for _ in range(order)]
    for sentence in sentences:
        for piece in _pieces(normalize(sentence), vocabulary):
            tokens = ["<s>", *piece, "</s>"]
            for n in range(1, order + 1):
                for i in range(len(tokens) - n + 1):
                    counts[n - 1][tuple(tokens[i:i + n])] += 1
    if not counts[0]:
        raise ValueError("the language model corpus has no usable words")
    probs = _probabilities(counts)
    backoffs = _backoffs(counts)
    lines = ["\\data\\"] + [f"ngram {n + 1}={len(counts[n])}" for n in range(order)]
    for n in range(order):
        lines += ["", f"\\{n + 1}-grams:"]
        for gram in sorted(counts[n]):
            prob = -99.0 if gram == ("<s>",) else math.log10(probs[gram])
            entry = f"{prob:.5f}\t{' '.join(gram)}"
            if n < order - 1 and gram in backoffs:
                entry += f"\t{math.log10(backoffs[gram]):.5f}"
            lines.append(entry)
    return "\n".join(lines + ["", "\\end\\", ""])


def _pieces(words: list[str], vocabulary: set[str] | None) -> list[list[str]]:
    if vocabulary is None:
        return [words] if words else []
    pieces, current = [], []
    for word in words:
        if word in vocabulary:
            current.append(word)
        elif current:
            pieces.append(current)
            current = []
    if current:
        pieces.append(current)
    return pieces


def _probabilities(counts: list[Counter]) -> dict[tuple[str, ...], float]:
    """Interpolated absolute discounting; the unigram level mixes in a uniform floor."""
    unigrams = counts[0]
    total = sum(c for g, c in unigrams.items() if g != ("<s>",))
    size = len(unigrams) - 1
    probs: dict[tuple[str, ...], float] = {
        g: (1 - _UNIFORM_WEIGHT) * c / total + _UNIFORM_WEIGHT / size for g, c in unigrams.items()
    }
    gammas = _backoffs(counts)
    for n in range(1, len(counts)):
        context_total: Counter[tuple[str, ...]] = Counter()
        for gram, c in counts[n].items():
            context_total[gram[:-1]] += c
        for gram, c in counts[n].items():
            history = gram[:-1]
            probs[gram] = (c - _DISCOUNT) / context_total[history] + gammas[history] * probs[gram[1:]]
    return probs


def _backoffs(counts: list[Counter]) -> dict[tuple[str, ...], float]:
    """With interpolated discounting the backoff weight of a history is exactly its gamma."""
    weights: dict[tuple[str, ...], float] = {}
    for n in range(1, len(counts)):
        context_total: Counter[tuple[str, ...]] = Counter()
        followers: Counter[tuple[str, ...]] = Counter()
        for gram, c in counts[n].items():
            context_total[gram[:-1]] += c
            followers[gram[:-1]] += 1
        for history, total in context_total.items():
            weights[history] = _DISCOUNT * followers[history] / total
    return weights
