"""Emergency cue phrases: found on surface words, so tense survives.

"someone is breaking in" is a cue, "my house was broken into" is not — stemming would merge them.
A cue is ignored when it is negated ("it's not on fire"), when its words belong to a longer
non-emergency keyword the rules define ("fire hydrant", "fire hazard"), when a one-word cue names a
thing ("the fire station"), or when the caller says it is over ("last week") and nothing says it is
still going on. A word one slip away from a cue word is read as that word.

Some emergencies are told as two facts that are each ordinary: "my car is stuck in the underpass"
(roads) and "the water is coming in" (water) mean someone is about to drown. The rules' `together`
entries ("stuck + water is coming in") are cues whose parts may be anywhere in what was said, each
found and negated as a cue is. Pure.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ivr.lang import Language
from ivr.routing.text import edits1, surface_key, surface_tokens

MAX_CUE_GAP = 2          # "power line [is] down", "smell [natural] gas"
NEGATION_WINDOW = 3      # "there is [no] smoke", "[not] on fire"
FUZZY_MIN_LENGTH = 6     # shorter words have too many real neighbours


@dataclass(frozen=True)
class Cue:
    keys: tuple[str, ...]
    text: str


@dataclass(frozen=True)
class CueMatch:
    text: str
    positions: frozenset[int]    # surface-token positions


class EmergencyCues:
    """The rules' emergency phrases in one language, ready to scan caller words."""

    def __init__(self, language: Language, phrases: tuple[str, ...], together: tuple[str, ...] = ()) -> None:
        self.language = language
        self.negations = language.negations
        # "It is over" vs "it is happening" (the language file's `over` / `now`): a cue heard with
        # only an over-marker is a report for a department ("my dog was hit by a car last week");
        # any now-marker keeps it an emergency, and a present tense counts as one.
        self._things = {k: {surface_key(w) for w in v} for k, v in language.not_an_event.items()}
        self._over = [tuple(surface_key(w) for w in m.split()) for m in language.over]
        self._now = [tuple(surface_key(w) for w in m.split()) for m in language.now]
        self.by_first: dict[str, list[Cue]] = {}
        self.deletes: dict[str, set[str]] = {}
        #: (entry as written, its parts' keys, the parts' first keys: a part is found from its first)
        self.together: list[tuple[str, tuple[tuple[str, ...], ...], frozenset[str]]] = []
        self._cue_words: set[str] = set()
        for phrase in phrases:
            keys = self._learn(phrase)
            if keys:
                self.by_first.setdefault(keys[0], []).append(Cue(keys, phrase))
        for entry in together:
            parts = tuple(keys for keys in (self._learn(part) for part in entry.split("+")) if keys)
            if len(parts) >= 2:
                self.together.append((" + ".join(" ".join(p.strip().split()) for p in entry.split("+")), parts,
                                      frozenset(part[0] for part in parts)))

    def _learn(self, phrase: str) -> tuple[str, ...]:
        """A phrase's keys; its long words become fuzzy targets ("buning" is heard as "burning")."""
        keys = tuple(surface_key(w) for w in surface_tokens(phrase, self.language))
        self._cue_words.update(k for k in keys if len(k) >= FUZZY_MIN_LENGTH)
        for key in keys:
            if len(key) >= FUZZY_MIN_LENGTH:
                for variant in edits1(key) | {key}:
                    self.deletes.setdefault(variant, set()).add(key)
        return keys

    def find(self, words: list[str], phrase_spans: list[set[int]],
             known: Callable[[str], bool] = lambda word: False) -> list[CueMatch]:
        """Cues present in `words`, skipping negated ones and those inside a longer keyword phrase.

        A word the rules do not know that is one slip away from a cue word ("buning", "bleeing")
        is read as that cue word: a misheard emergency must still be heard. `known` tells real
        words apart ("breeding" is a word of the mosquito examples, not a misheard "bleeding").
        """
        keys = self._joined([self._heard_as(surface_key(w), known) for w in words])
        found: list[CueMatch] = []
        for start, key in enumerate(keys):
            for cue in self.by_first.get(key, ()):
                span = _find(keys, start, cue.keys, self.negations)
                if span is None or any(span < other for other in phrase_spans):
                    continue
                if len(cue.keys) == 1 and start + 1 < len(keys) and keys[start + 1] in self._things.get(key, ()):
                    continue
                if cue.keys[0] not in self.negations and self._negated(keys, start):
                    continue
                found.append(CueMatch(cue.text, frozenset(span)))
        heard = set(keys)
        for text, parts, firsts in self.together:
            # A part can only be found from its first word: most entries are out at a set test.
            if not firsts <= heard:
                continue
            spans = [self._part(keys, part) for part in parts]
            if all(span is not None for span in spans):
                found.append(CueMatch(text, frozenset().union(*spans)))
        return found

    def _part(self, keys: list[str], part: tuple[str, ...]) -> set[int] | None:
        """Where one part of a `together` entry is heard (not negated), or None. Unlike a cue, a part
        inside a department's keyword still counts: the parts are ordinary words on purpose
        ("breaking the windows" is vandalism; "+ right now" makes it a crime in progress)."""
        for start, key in enumerate(keys):
            if key != part[0]:
                continue
            span = _find(keys, start, part, self.negations)
            if span is None:
                continue
            if part[0] not in self.negations and self._negated(keys, start):
                continue
            return span
        return None

    def _joined(self, keys: list[str]) -> list[str]:
        """A cue word the recogniser split in two ("se está que mando" for "quemando") is read whole;
        the second half's place is left blank so positions still point at the caller's words."""
        out = list(keys)
        for i in range(len(out) - 1):
            joined = out[i] + out[i + 1]
            if out[i] and out[i + 1] and joined in self._cue_words and \
                    out[i] not in self._cue_words and out[i + 1] not in self._cue_words:
                out[i], out[i + 1] = joined, ""
        return out

    def is_over(self, words: list[str]) -> str | None:
        """The words that say the event is over ("last week"), unless others say it is still on."""
        keys = [surface_key(w) for w in words]
        if any(_find(keys, i, m) is not None for m in self._now for i, k in enumerate(keys) if k == m[0]):
            return None
        return next((" ".join(m) for m in self._over for i, k in enumerate(keys)
                     if k == m[0] and _find(keys, i, m) is not None), None)

    def _heard_as(self, key: str, known: Callable[[str], bool]) -> str:
        if len(key) < FUZZY_MIN_LENGTH or key in self.deletes and key in self.deletes[key] or known(key):
            return key
        near = {c for v in edits1(key) | {key} for c in self.deletes.get(v, ()) if c[0] == key[0]}
        return min(near) if len(near) == 1 else key  # two cue words equally near: do not guess

    def _negated(self, keys: list[str], start: int) -> bool:
        return any(k in self.negations for k in keys[max(0, start - NEGATION_WINDOW):start])


def _find(keys: list[str], start: int, want: tuple[str, ...],
          negations: frozenset[str] = frozenset()) -> set[int] | None:
    """Positions of `want` from `start`, each word at most MAX_CUE_GAP words after the one before.
    A negation in a gap breaks the match: "are [not] trapped" is not "are trapped"."""
    span, pos = {start}, start
    for key in want[1:]:
        for nxt in range(pos + 1, min(pos + 2 + MAX_CUE_GAP, len(keys))):
            if keys[nxt] == key:
                span.add(nxt)
                pos = nxt
                break
            if keys[nxt] in negations:
                return None
        else:
            return None
    return span
