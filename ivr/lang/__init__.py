"""What the line knows about each language, read from one YAML file per language.

`en.yaml` and `es.yaml` ship here; an admin adds a language with `lang/<code>.yaml` beside the
rules file (searched first), `prompts/<code>.yaml` and the code in the rules' `languages`.
The routing core and the edges read a `Language`; no language's words live in Python.

Reading a file is the only I/O here (like `zoneinfo` reading its database); `builtin` caches it.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

BUILTIN_DIR = Path(__file__).resolve().parent
STEMMERS = ("english", "suffixes", "none")
LOCALE_KINDS = ("say", "gather", "tts_voice", "vosk", "whisper")
_HOURS_KEYS = ("days", "clock", "am", "pm", "midnight", "day_range", "time_range", "all_day", "and",
               "closed", "closed_today_for")


class LanguageError(ValueError):
    """A language file that is missing or wrong; the message names the file and every problem."""


def fold(text: str) -> str:
    """Lower-case and strip accents ("Sí, señor" → "si, senor"), so ASR output and YAML agree."""
    decomposed = unicodedata.normalize("NFKD", text.lower().replace("’", "'").replace("`", "'"))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@dataclass(frozen=True)
class Answers:
    """Words and phrases that mean yes (or no) to a yes/no question."""
    words: tuple[str, ...]          # most common first (speech hints keep this order)
    phrases: tuple[str, ...]
    despite_yes: tuple[str, ...] = ()   # for no: phrases that make an answer a no though it holds a yes word


@dataclass(frozen=True)
class HoursWording:
    days: tuple[str, ...]       # Monday first
    clock: str                  # "12h" | "24h"
    am: str
    pm: str
    midnight: str
    day_range: str              # "{first} to {last}"
    time_range: str             # "{opens} to {closes}"
    all_day: str
    and_: str
    closed: str
    closed_today_for: str


@dataclass(frozen=True)
class WhisperWording:
    """What the agent hears before a transferred call (see `whisper:` in en.yaml)."""
    text: str
    caller: str
    no_department: str
    keypad_heard: str
    keypad_confidence: str
    percent: str
    unknown_caller: str


_WHISPER_KEYS = ("text", "caller", "no_department", "keypad_heard", "keypad_confidence", "percent",
                 "unknown_caller")


@dataclass(frozen=True)
class NumberWords:
    units: Mapping[str, int]    # one … nineteen (or as the language counts)
    tens: Mapping[str, int]     # twenty … ninety
    scales: Mapping[str, int]   # hundred, thousand: multiply what came before
    joiners: frozenset[str]     # "and" in "two hundred and twelve"


@dataclass(frozen=True, eq=False)   # identity: one per loaded file, usable as a cache key
class Language:
    code: str
    names: Mapping[str, str]            # this language's name in each language
    called: tuple[str, ...]             # folded names callers use to choose it
    locales: Mapping[str, str]          # say, gather, tts_voice, vosk, whisper
    yes: Answers
    no: Answers
    contractions: Mapping[str, str]
    fillers: frozenset[str]
    stop_words: frozenset[str]
    negations: frozenset[str]
    lemmas: Mapping[str, str]
    stemmer: str                        # "english" | "suffixes" | "none"
    suffixes: tuple[str, ...]
    min_stem: int
    unstemmed: frozenset[str]
    street_suffixes: frozenset[str]
    not_a_street_name: frozenset[str]
    over: tuple[str, ...]               # "it is over" markers
    now: tuple[str, ...]                # "it is happening" markers
    not_an_event: Mapping[str, frozenset[str]]
    numbers: NumberWords
    sound_alikes: Mapping[str, str]     # a word recognisers write → the word that sounds the same
    misheard: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]   # (as written, as meant) word runs
    unfinished_words: frozenset[str]
    hours: HoursWording
    whisper: WhisperWording
    phone_groups: Mapping[int, tuple[int, ...]]
    source: str = ""
    #: Words that pick a spoken choice (report, message, callback, repeat, text, finish,
    #: something_else, updates, dont_know): the after-hours report and alerts on the phone.
    choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def name_in(self, language: str) -> str:
        """This language's name for a speaker of `language` (its own name when not given)."""
        return self.names.get(language) or self.names.get(self.code) or self.code


class _Reader:
    """Typed access to a language file's mapping, collecting every problem before failing."""

    def __init__(self, data: Mapping[str, Any], where: str) -> None:
        self.data = data
        self.where = where
        self.problems: list[str] = []

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None, *, required: bool = True,
            data: Mapping[str, Any] | None = None, label: str | None = None) -> Any:
        source = self.data if data is None else data
        name = label or key
        if key not in source or source[key] is None:
            if required:
                self.problems.append(f"'{name}' is missing")
            return default
        value = source[key]
        if not isinstance(value, kind):
            self.problems.append(f"'{name}' must be a {_kind_name(kind)}, not {type(value).__name__}")
            return default
        return value

    def words(self, key: str, *, required: bool = True, data: Mapping[str, Any] | None = None,
              label: str | None = None) -> tuple[str, ...]:
        items = self.get(key, list, [], required=required, data=data, label=label)
        bad = [repr(i) for i in items if not isinstance(i, (str, int)) or isinstance(i, bool)]
        if bad:
            hint = (" (YAML reads unquoted yes/no/on/off/y/n as true/false: quote them, e.g. \"no\")"
                    if any(isinstance(i, bool) for i in items) else "")
            self.problems.append(f"'{label or key}' must list words; these are not: {', '.join(bad[:5])}{hint}")
        return tuple(fold(str(i)) for i in items if isinstance(i, (str, int)) and not isinstance(i, bool))

    def text_map(self, key: str, *, required: bool = True, data: Mapping[str, Any] | None = None,
                 label: str | None = None, fold_keys: bool = True) -> dict[str, str]:
        items = self.get(key, dict, {}, required=required, data=data, label=label)
        out = {}
        for k, v in items.items():
            if not isinstance(v, (str, int)) or isinstance(v, bool):
                self.problems.append(f"'{label or key}.{k}' must be text, not {type(v).__name__}")
                continue
            out[fold(str(k)) if fold_keys else str(k)] = fold(str(v)) if fold_keys else str(v)
        return out

    def number_map(self, key: str, data: Mapping[str, Any], label: str) -> dict[str, int]:
        items = self.get(key, dict, {}, data=data, label=label, required=False)
        out = {}
        for k, v in items.items():
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                self.problems.append(f"'{label}.{k}' must be a whole number ≥ 0, not {v!r}")
                continue
            out[fold(str(k))] = v
        return out


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {list: "list", dict: "mapping", str: "text", int: "whole number"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def parse_language(text: str, code: str, where: str = "<language>") -> Language:
    """Build a `Language` from a language file's text; `LanguageError` lists every problem."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise LanguageError(f"{where}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise LanguageError(f"{where}: a language file is a mapping (code: …, names: …, …)")
    r = _Reader(data, where)
    if str(data.get("code", code)) != code:
        r.problems.append(f"'code' is {data.get('code')!r} but the file is for {code!r}")
    names = r.text_map("names", fold_keys=False)
    if names and code not in names:
        r.problems.append(f"'names' must give the language's own name ({code}: …)")
    locales = r.text_map("locales", fold_keys=False)
    missing = [k for k in LOCALE_KINDS if k not in locales]
    if locales and missing:
        r.problems.append(f"'locales' lacks {', '.join(missing)}")
    yes_data = r.get("yes_answer", dict, {})
    no_data = r.get("no_answer", dict, {})
    stemmer = r.get("stemmer", str, "none")
    if stemmer not in STEMMERS:
        r.problems.append(f"'stemmer' must be one of {', '.join(STEMMERS)}, not {stemmer!r}")
    suffixes = r.words("suffixes", required=stemmer == "suffixes")
    hours_data = r.get("hours", dict, {})
    hours_values = {k: hours_data.get(k) for k in _HOURS_KEYS}
    for key in _HOURS_KEYS:
        if key in hours_data and hours_data[key] is None:
            hours_values[key] = ""
        elif key not in hours_data:
            r.problems.append(f"'hours.{key}' is missing")
    days = tuple(str(d) for d in hours_values["days"] or ())
    if hours_data and len(days) != 7:
        r.problems.append(f"'hours.days' must name 7 days, Monday first (has {len(days)})")
    if hours_data and hours_values["clock"] not in ("12h", "24h"):
        r.problems.append(f"'hours.clock' must be 12h or 24h, not {hours_values['clock']!r}")
    for key, fields in (("day_range", ("{first}", "{last}")), ("time_range", ("{opens}", "{closes}"))):
        value = str(hours_values[key] or "")
        if hours_data and not all(f in value for f in fields):
            r.problems.append(f"'hours.{key}' must contain {' and '.join(fields)}")
    numbers = r.get("numbers", dict, {})
    whisper = r.get("whisper", dict, {})
    missing = [k for k in _WHISPER_KEYS if not whisper.get(k)]
    if whisper and missing:
        r.problems.append(f"'whisper' lacks {', '.join(missing)}")
    choices = r.get("choices", dict, {}, required=False)
    groups_data = r.get("phone_groups", dict, {})
    groups: dict[int, tuple[int, ...]] = {}
    for length, parts in groups_data.items():
        if not isinstance(length, int) or not isinstance(parts, list) or sum(p for p in parts if isinstance(p, int)) != length:
            r.problems.append(f"'phone_groups.{length}' must list group sizes adding up to {length}")
        else:
            groups[length] = tuple(parts)
    not_an_event = {fold(str(k)): frozenset(r.words(k, data=r.get("not_an_event", dict, {}, required=False),
                                                     label=f"not_an_event.{k}"))
                    for k in r.get("not_an_event", dict, {}, required=False)}
    language = Language(
        code=code, names=names,
        called=tuple(dict.fromkeys([fold(n) for n in names.values()] + list(r.words("also_called", required=False)))),
        locales=locales,
        yes=Answers(r.words("words", data=yes_data, label="yes_answer.words"),
                    r.words("phrases", data=yes_data, label="yes_answer.phrases", required=False)),
        no=Answers(r.words("words", data=no_data, label="no_answer.words"),
                   r.words("phrases", data=no_data, label="no_answer.phrases", required=False),
                   r.words("despite_yes", data=no_data, label="no_answer.despite_yes", required=False)),
        contractions=r.text_map("contractions", required=False),
        fillers=frozenset(r.words("fillers")), stop_words=frozenset(r.words("stop_words")),
        negations=frozenset(r.words("negations")), lemmas=r.text_map("lemmas", required=False),
        stemmer=stemmer, suffixes=suffixes, min_stem=int(r.get("min_stem", int, 3, required=False)),
        unstemmed=frozenset(r.words("unstemmed", required=False)),
        street_suffixes=frozenset(r.words("street_suffixes", required=False)),
        not_a_street_name=frozenset(r.words("not_a_street_name", required=False)),
        over=r.words("over", required=False), now=r.words("now", required=False),
        not_an_event=not_an_event,
        numbers=NumberWords(r.number_map("units", numbers, "numbers.units"),
                            r.number_map("tens", numbers, "numbers.tens"),
                            r.number_map("scales", numbers, "numbers.scales"),
                            frozenset(r.words("joiners", data=numbers, label="numbers.joiners", required=False))),
        sound_alikes=r.text_map("sound_alikes", required=False),
        misheard=tuple((tuple(k.split()), tuple(v.split()))
                       for k, v in r.text_map("misheard", required=False).items() if k.split()),
        unfinished_words=frozenset(r.words("unfinished_words")),
        hours=HoursWording(days=days, clock=str(hours_values["clock"]), am=str(hours_values["am"] or ""),
                           pm=str(hours_values["pm"] or ""), midnight=str(hours_values["midnight"] or ""),
                           day_range=str(hours_values["day_range"] or ""),
                           time_range=str(hours_values["time_range"] or ""),
                           all_day=str(hours_values["all_day"] or ""), and_=str(hours_values["and"] or ""),
                           closed=str(hours_values["closed"] or ""),
                           closed_today_for=str(hours_values["closed_today_for"] or "")),
        whisper=WhisperWording(**{k: str(whisper.get(k) or "") for k in _WHISPER_KEYS}),
        phone_groups=groups, source=where,
        choices={str(k): r.words(k, data=choices, label=f"choices.{k}") for k in choices})
    if r.problems:
        raise LanguageError(f"{where}: " + "; ".join(r.problems))
    return language


def find(code: str, dirs: Iterable[str | Path] = ()) -> Path | None:
    """The file for `code`: the first of `dirs` holding `<code>.yaml`, else the built-in one."""
    for directory in [*dirs, BUILTIN_DIR]:
        path = Path(directory) / f"{code}.yaml"
        if path.is_file():
            return path
    return None


def dirs_beside(rules_path: str | Path | None) -> tuple[Path, ...]:
    """Where an admin's own language files live: `lang/` beside the rules file."""
    return (Path(rules_path).parent / "lang",) if rules_path else ()


def locale(code: str, kind: str, dirs: Iterable[str | Path] = ()) -> str | None:
    """The language's locale of `kind` (say, gather, tts_voice, vosk, whisper); None without a file."""
    try:
        return load_language(code, dirs).locales.get(kind)
    except LanguageError:
        return None


def language_with_locale(kind: str, value: str, dirs: Iterable[str | Path] = ()) -> str | None:
    """The code of the language whose locale of `kind` is `value` ("vosk", "en-us" → "en"), or None.

    Admins' files in `dirs` first, then the built-in ones; a file that does not parse is skipped."""
    for directory in [*dirs, BUILTIN_DIR]:
        folder = Path(directory)
        for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else ():
            if locale(path.stem, kind, dirs) == value:
                return path.stem
    return None


def load_language(code: str, dirs: Iterable[str | Path] = ()) -> Language:
    """The language `code` from the first of `dirs` that has it, else the built-in file."""
    dirs = tuple(dirs)
    path = find(code, dirs)
    if path is None:
        looked = ", ".join(str(Path(d)) for d in (*dirs, BUILTIN_DIR))
        raise LanguageError(f"no language file for '{code}': add {code}.yaml (looked in {looked}); "
                            "copy ivr/lang/en.yaml and translate it")
    if path.parent == BUILTIN_DIR:
        return builtin(code)
    try:
        stamp = path.stat().st_mtime_ns
    except OSError as exc:
        raise LanguageError(f"{path}: cannot read the language file: {exc}") from None
    return _read_version(path, code, stamp)


@lru_cache(maxsize=64)
def _read_version(path: Path, code: str, stamp: int) -> Language:
    """One version of an admin's file, read once (a changed file has a new `stamp`)."""
    return _read(path, code)


def _read(path: Path, code: str) -> Language:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LanguageError(f"{path}: cannot read the language file: {exc}") from None
    return parse_language(text, code, str(path))


@lru_cache(maxsize=None)
def builtin(code: str) -> Language:
    """A language shipped with the package (read once per process)."""
    path = BUILTIN_DIR / f"{code}.yaml"
    if not path.is_file():
        shipped = ", ".join(sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml")))
        raise LanguageError(f"no built-in language '{code}' (shipped: {shipped})")
    return _read(path, code)
