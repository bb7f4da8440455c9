"""Pronunciations admins can edit: the `pronunciations:` section of prompts/<lang>.yaml.

    pronunciations:
      "311": {digits: true}                 # three one one, not three hundred eleven
      "St.": Street                         # abbreviations read out in full
      "Dept.": Department
      "1500": fifteen hundred               # a number read as words
      Wacker: {say: Wocker, phonemes: "wˈɑːkɚ"}
      "DMV": {say: "D M V", match_case: true}

A plain text value is a respelling. `say` is the respelling every engine can read (espeak via
pyttsx3, Twilio's <Say>); `phonemes` is IPA for engines that take phonemes (Piper, written as
its `[[ … ]]` block) and needs `say` beside it for the others; `digits: true` reads the
written digits one by one. Matching is whole-word and case-insensitive unless `match_case`.

Pure: parses the YAML it is handed and rewrites text; no audio, no Flask.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import yaml

from ivr.routing.problems import Problem

SECTION = "pronunciations"
_FIELDS = {"say", "phonemes", "digits", "match_case"}
#: Characters a respelling may not contain: they would be read as markup by an engine.
_MARKUP = re.compile(r"[\[\]<>{}]")
#: What follows a dot that ends a sentence: the end, or a space and a capital letter.
_SENTENCE_END = re.compile(r"\s*$|\s+[A-ZÁÉÍÓÚÑ¿¡]")


@dataclass(frozen=True)
class Entry:
    """How one written word or phrase is spoken."""
    written: str
    say: str                  # respelling: what every engine reads
    phonemes: str = ""        # IPA, for engines that take phonemes
    match_case: bool = False


@dataclass(frozen=True)
class Lexicon:
    """One language's pronunciations, applied as one regular-expression pass."""
    entries: tuple[Entry, ...] = ()
    _pattern: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.entries:
            # Longest first, so "Dept. of Streets" wins over "Dept.". One alternative per entry,
            # each in its own named group, so a match tells which entry it was.
            ordered = sorted(range(len(self.entries)), key=lambda i: -len(self.entries[i].written))
            parts = [f"(?P<e{i}>{'' if self.entries[i].match_case else '(?i:'}"
                     f"{re.escape(self.entries[i].written)}{'' if self.entries[i].match_case else ')'})"
                     for i in ordered]
            pattern = re.compile(r"(?<![\w])(?:" + "|".join(parts) + r")(?![\w])")
            object.__setattr__(self, "_pattern", pattern)

    def apply(self, text: str, *, phonemes: bool = False) -> str:
        """`text` with every entry replaced: its IPA as `[[ … ]]` when `phonemes` and it has
        some, else its respelling."""
        if self._pattern is None:
            return text

        def replace(match: re.Match[str]) -> str:
            entry = self.entries[int(match.lastgroup[1:])]  # type: ignore[index]
            spoken = f"[[ {entry.phonemes} ]]" if phonemes and entry.phonemes else entry.say
            # "… on Main St." ends a sentence: the abbreviation's dot was also the full stop.
            if entry.written.endswith(".") and _SENTENCE_END.match(text, match.end()):
                spoken += "."
            return spoken
        return self._pattern.sub(replace, text)

    def segments(self, text: str) -> list[str | tuple[str, Entry]]:
        """`text` cut into plain strings and (written words, entry) pairs, in order."""
        if self._pattern is None:
            return [text] if text else []
        result: list[str | tuple[str, Entry]] = []
        position = 0
        for match in self._pattern.finditer(text):
            if match.start() > position:
                result.append(text[position:match.start()])
            result.append((match.group(0), self.entries[int(match.lastgroup[1:])]))  # type: ignore[index]
            position = match.end()
        if position < len(text):
            result.append(text[position:])
        return result

    def fingerprint(self) -> str:
        """A stable text of the entries, part of every rendering's cache key."""
        return "\n".join(f"{e.written}\t{e.say}\t{e.phonemes}\t{int(e.match_case)}" for e in self.entries)


def parse(node: yaml.Node | None, path: str) -> tuple[Lexicon, list[Problem]]:
    """The lexicon in a `pronunciations:` value node, and every problem with it."""
    if node is None:
        return Lexicon(), []
    if not isinstance(node, yaml.MappingNode):
        return Lexicon(), [Problem(path, node.start_mark.line + 1,
                                   "pronunciations must be a mapping of written word → how to say it")]
    entries: list[Entry] = []
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for key_node, value_node in node.value:
        line = key_node.start_mark.line + 1
        written = str(key_node.value).strip()
        entry, problem = _entry(written, value_node)
        folded = written if entry and entry.match_case else written.lower()
        if problem:
            problems.append(Problem(path, line, f"pronunciation of '{written}': {problem}"))
        elif folded in seen:
            problems.append(Problem(path, line, f"pronunciation of '{written}' is given twice "
                                                f"(also line {seen[folded]}); keep one"))
        else:
            seen[folded] = line
            entries.append(entry)  # type: ignore[arg-type]
    return Lexicon(tuple(entries)), problems


def _entry(written: str, node: yaml.Node) -> tuple[Entry | None, str]:
    if not written:
        return None, "the written form is empty"
    if isinstance(node, yaml.ScalarNode):
        fields: dict[str, str] = {"say": str(node.value)}
    elif isinstance(node, yaml.MappingNode) and all(isinstance(v, yaml.ScalarNode) for _, v in node.value):
        fields = {str(k.value): str(v.value) for k, v in node.value}
    else:
        return None, "write a respelling, or {say: …, phonemes: …, digits: true, match_case: true}"
    unknown = sorted(set(fields) - _FIELDS)
    if unknown:
        return None, f"unknown field(s) {', '.join(unknown)}; use say, phonemes, digits, match_case"
    flags = {}
    for name in ("digits", "match_case"):
        raw = fields.get(name, "false").strip().lower()
        if raw not in {"true", "false"}:
            return None, f"{name} must be true or false, not '{fields[name]}'"
        flags[name] = raw == "true"
    say = fields.get("say", "").strip()
    if flags["digits"]:
        digits = [ch for ch in written if ch.isdigit()]
        if not digits:
            return None, "digits: true needs digits in the written form"
        if say:
            return None, "give either digits: true or say, not both"
        say = " ".join(digits)
    phonemes = fields.get("phonemes", "").strip()
    if not say:
        return None, ("say is missing: give the respelling every engine and <Say> read"
                      + (" (phonemes are used only by Piper)" if phonemes else ""))
    if _MARKUP.search(say) or _MARKUP.search(phonemes):
        return None, "brackets, braces and < > are not allowed (engines read them as markup)"
    return Entry(written, say, phonemes, flags["match_case"]), ""


def load(path: str | Path) -> tuple[Lexicon, list[Problem]]:
    """The `pronunciations:` section of one prompts/<lang>.yaml (empty when it has none).

    Unreadable or invalid YAML is the catalogue's problem to report; here it is an empty lexicon.
    """
    try:
        root = yaml.compose(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return Lexicon(), []
    if not isinstance(root, yaml.MappingNode):
        return Lexicon(), []
    node = next((v for k, v in root.value if str(k.value) == SECTION), None)
    return parse(node, str(path))


def check_phonemes(lexicon: Lexicon, known: Iterable[str], path: str, voice: str) -> list[Problem]:
    """Entries whose IPA uses symbols the Piper voice `voice` cannot say."""
    symbols = set(known) | {" "}
    problems = []
    for entry in lexicon.entries:
        unknown = sorted({ch for ch in entry.phonemes if ch not in symbols})
        if unknown:
            problems.append(Problem(path, 0, f"pronunciation of '{entry.written}': phonemes {' '.join(unknown)} "
                                             f"are not in the {voice} voice; write IPA as `espeak-ng -q --ipa` does"))
    return problems
