"""Text normalisation for the classifier: how callers talk and how recognisers mishear.

Pure functions, no I/O; every word list comes from the caller's `Language` (ivr/lang/<code>.yaml).
Two token forms are produced:
- *surface* tokens: lower-case, accents folded, contractions expanded, fillers dropped —
  tense survives ("breaking" ≠ "broke"), which the emergency cues need;
- *stems*: surface tokens with stop words removed, irregular forms mapped to a lemma,
  synonyms mapped to one word and light suffix stripping, used for intent scoring.
"""
from __future__ import annotations

import re
from functools import lru_cache

from ivr.lang import Language, fold

__all__ = ["fold", "surface_tokens", "stem", "stems", "surface_key", "edits1"]

_WORD = re.compile(r"[a-z0-9]+")


@lru_cache(maxsize=64)
def _contraction_pattern(lang: Language) -> re.Pattern[str] | None:
    if not lang.contractions:
        return None
    # Longest first, so "won't" is expanded whole rather than as "wo" + "n't".
    forms = sorted(lang.contractions, key=len, reverse=True)
    return re.compile("|".join(re.escape(f) for f in forms))


def _words(text: str, lang: Language) -> list[str]:
    folded = fold(text)
    pattern = _contraction_pattern(lang)
    if pattern is not None:
        folded = pattern.sub(lambda m: lang.contractions[m.group(0)], folded)
    return _WORD.findall(folded)


@lru_cache(maxsize=64)
def _misheard(lang: Language) -> dict[str, tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]]:
    """The language's misheard runs as word tuples, by first word, longest first within each (so
    "is on far" beats "on far"). By first word: a sentence checks only the runs that can start at
    each of its words, not every run of the language at every word (a fifth of a classification)."""
    rules = [(tuple(_words(" ".join(k), lang)), tuple(_words(" ".join(v), lang))) for k, v in lang.misheard]
    by_first: dict[str, list[tuple[tuple[str, ...], tuple[str, ...]]]] = {}
    for written, meant in sorted((r for r in rules if r[0]), key=lambda r: -len(r[0])):
        by_first.setdefault(written[0], []).append((written, meant))
    return {first: tuple(runs) for first, runs in by_first.items()}


def _as_meant(words: list[str], lang: Language) -> list[str]:
    """Word runs a recogniser typically mishears, replaced by what the caller meant."""
    rules = _misheard(lang)
    if not rules:
        return words
    out: list[str] = []
    i = 0
    while i < len(words):
        for written, meant in rules.get(words[i], ()):
            if tuple(words[i:i + len(written)]) == written:
                out.extend(meant)
                i += len(written)
                break
        else:
            out.append(words[i])
            i += 1
    return out


def _digits(words: list[str], lang: Language) -> list[str]:
    """Numbers said as words become digits ("four hundred and twelve" → "412", "one two three" → "123").

    A lone number word that is also a stop word ("one", "un") is left alone: it is usually a pronoun
    or an article, not a number.
    """
    numbers = lang.numbers
    if not (numbers.units or numbers.tens):
        return words

    def is_number(k: int) -> bool:
        return words[k] in numbers.units or words[k] in numbers.tens or words[k] in numbers.scales

    out: list[str] = []
    i = 0
    while i < len(words):
        if not is_number(i) or words[i] in numbers.scales:
            out.append(words[i])
            i += 1
            continue
        run = [words[i]]
        j = i + 1
        while j < len(words):
            if is_number(j):
                run.append(words[j])
            elif words[j] in numbers.joiners and j + 1 < len(words) and is_number(j + 1) and \
                    any(w in numbers.scales or w in numbers.tens for w in run):
                pass   # "two hundred and twelve", "treinta y cinco"; not "one and two"
            else:
                break
            j += 1
        if len(run) == 1 and run[0] in lang.stop_words:
            out.append(run[0])
        else:
            out.append(_value(run, numbers))
        i = j
    return out


def _value(run: list[str], numbers) -> str:
    if all(numbers.units.get(w, 10) < 10 for w in run) and len(run) > 1:
        return "".join(str(numbers.units[w]) for w in run)     # digits read one by one
    total = current = 0
    for word in run:
        if word in numbers.scales:
            scale = numbers.scales[word]
            if scale < 1000:
                current = (current or 1) * scale
            else:
                total += (current or 1) * scale
                current = 0
        else:
            current += numbers.units.get(word, numbers.tens.get(word, 0))
    return str(total + current)


def surface_tokens(text: str, lang: Language) -> list[str]:
    """Folded words with contractions expanded and fillers removed; tense and order kept.

    What recognisers typically mishear is read as meant, and numbers said as words are digits.
    """
    words = [w for w in _words(text, lang) if w not in lang.fillers]
    words = _digits(_as_meant(words, lang), lang)
    # Street names are not requests: "Park Avenue", "Main Street", "Water Street". The name goes and
    # so does its suffix: "a dead raccoon on Orchard Road" says nothing about roads, while "the road
    # by the school" (a word that describes the street before it) keeps "road".
    suffixes = lang.street_suffixes
    named = {i for i in range(len(words) - 1)
             if words[i + 1] in suffixes and words[i] not in lang.not_a_street_name}
    return [w for i, w in enumerate(words)
            if i not in named and i - 1 not in named
            and not (w == "lot" and i + 1 < len(words) and words[i + 1] == "of")]


@lru_cache(maxsize=65536)
def stem(word: str, lang: Language) -> str:
    """Light, language-aware suffix stripping; the same on both the rules' and the caller's side."""
    word = lang.lemmas.get(word, word)
    if word in lang.unstemmed or len(word) <= 3 or word.isdigit():
        return word
    if lang.stemmer == "english":
        return _stem_english(word)
    if lang.stemmer == "suffixes":
        for suffix in lang.suffixes:
            if word.endswith(suffix) and len(word) - len(suffix) >= lang.min_stem:
                return word[: -len(suffix)]
    return word


def _undouble(word: str) -> str:
    # "stopped" → "stopp" → "stop"; keeps "ll"/"ss" words ("fall", "grass") intact.
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "lsz":
        return word[:-1]
    return word


def _stem_english(word: str) -> str:
    # English endings need rules, not a list (-ies → -y, doubled consonants): this is the one
    # stemmer in code; a language file picks it with `stemmer: english`.
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("sses"):
        word = word[:-2]
    elif word.endswith("es") and word[-3] in "xhoz" and len(word) > 4:
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    if word.endswith("ing") and len(word) > 5:
        word = _undouble(word[:-3])
    elif word.endswith("ed") and len(word) > 4:
        word = _undouble(word[:-2])
    elif word.endswith("ly") and len(word) > 5:
        word = word[:-2]
    if word.endswith("e") and len(word) > 3:
        word = word[:-1]
    if word.endswith("y") and len(word) > 3:
        word = word[:-1] + "i"
    return word


def stems(tokens: list[str], lang: Language) -> list[str]:
    """Content-word stems of surface tokens (stop words dropped, negations kept)."""
    return [stem(t, lang) for t in tokens if t not in lang.stop_words]


def surface_key(word: str) -> str:
    """Plural-insensitive form ("flames" → "flame") that keeps tense ("breaking" ≠ "broke")."""
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def edits1(word: str) -> set[str]:
    """Every string one deletion away from `word` (symmetric-delete fuzzy lookup, as in SymSpell)."""
    return {word[:i] + word[i + 1:] for i in range(len(word))}
