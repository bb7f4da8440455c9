"""The prompt catalogue: prompts/<lang>.yaml → `Prompt`s, filled per call, and checked.

No Flask, no audio: reads only the YAML files it is handed. `ivr.prompts.serving` uses it in
the app (through `CatalogueSource`, which re-reads the files when they change, keeping the
last good catalogue on a broken edit) and `ivr check` calls `check_prompts`.

File format (prompts/README.md): a mapping `key: "text with {placeholders}"`, or
`key: {text: "…", voice: es}` when a prompt must be spoken in another language's voice
(the English catalogue's Spanish invitation), plus `if_<placeholder>_is_<value>: "…"`
variants for grammar that depends on a value ("1 minute", not "1 minutes").
"""
from __future__ import annotations

import functools

import logging
import re
import string
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from ivr.routing.problems import ConfigError, Problem
from ivr.config import from_environment
from ivr.voices import Lexicon, piper_voices_dir
from ivr.voices import lexicon as pronunciations
from ivr.voices.piper_engine import PiperEngine, installed_voices, voice_files

log = logging.getLogger(__name__)

#: How often (seconds) the catalogue files' mtimes are compared; a stat per file per second.
RELOAD_CHECK_S = 1.0

#: Every key the call flow speaks → the placeholders its text may use.
#: A key here missing from a language file is an error; so is a placeholder not listed.
REQUIRED_KEYS: Mapping[str, frozenset[str]] = {
    "welcome": frozenset({"advisory"}),
    "choose_language": frozenset(),
    "ask": frozenset(),
    "ask_again": frozenset(),
    "no_input": frozenset(),
    "no_match": frozenset(),
    "confirm": frozenset({"description"}),
    "menu_intro": frozenset(),
    "menu_option": frozenset({"label", "digit"}),
    "menu_footer": frozenset(),
    "transferring": frozenset({"department"}),
    "operator": frozenset(),
    "queue_welcome": frozenset({"department"}),
    "queue_position": frozenset({"position", "minutes"}),
    "queue_offer": frozenset(),
    "busy": frozenset({"department"}),
    "after_hours": frozenset({"department", "hours"}),
    "callback_offer": frozenset(),
    "callback_done": frozenset(),
    "voicemail": frozenset(),
    "voicemail_done": frozenset(),
    "emergency_advisory": frozenset({"advisory"}),
    "emergency_transfer": frozenset(),
    "error": frozenset(),
    "goodbye": frozenset(),
    # After hours, "report it now", and alerts (issue 12; ivr/routing/report.py, decide.py).
    "report_offer_report": frozenset({"digit"}),
    "report_offer_callback": frozenset({"digit"}),
    "report_offer_voicemail": frozenset({"digit"}),
    "report_problem": frozenset(),
    "report_location": frozenset(),
    "report_filed": frozenset({"service"}),
    "case_number": frozenset({"case"}),
    "case_repeat": frozenset(),
    "case_text_offer": frozenset(),
    "case_finish": frozenset(),
    "case_texted": frozenset(),
    "report_goodbye": frozenset(),
    "case_sms": frozenset({"case", "service"}),
    "alert": frozenset({"message"}),
    "alert_something_else": frozenset(),
    "alert_updates": frozenset(),
    "alert_subscribed": frozenset({"topic"}),
    "alert_goodbye": frozenset(),
}

#: Placeholders an extra key (one the flow added but not listed above) may use.
KNOWN_PLACEHOLDERS: frozenset[str] = frozenset().union(*REQUIRED_KEYS.values()) | {"number"}


#: `if_minutes_is_1` → ("minutes", "1")
_VARIANT = re.compile(r"^if_([a-z][a-z0-9_]*?)_is_([A-Za-z0-9]+)$")


class PromptError(LookupError):
    """A prompt that cannot be produced: unknown language or key, or a missing value."""


@dataclass(frozen=True)
class Prompt:
    """One prompt of one language's catalogue."""
    key: str
    text: str            # template with {placeholders}
    voice: str           # language whose voice speaks it (usually the catalogue's own)
    line: int            # 1-based line in its file, for error messages
    path: str
    variants: tuple[tuple[str, str, str], ...] = ()  # (placeholder, value, text used instead)

    @functools.cached_property   # every fill checks them; parsing the template cost ~1 us each time
    def placeholders(self) -> frozenset[str]:
        """Names used in the template and its variants (ValueError for malformed braces)."""
        texts = (self.text, *(text for _, _, text in self.variants))
        return frozenset(name for text in texts for _, name, _, _ in string.Formatter().parse(text) if name)

    def template(self, values: Mapping[str, Any]) -> str:
        """The text for these values: the first variant whose condition holds, else `text`."""
        for name, expected, text in self.variants:
            if name in values and _spoken(values[name]) == expected:
                return text
        return self.text


#: language → key → Prompt
Catalogue = Mapping[str, Mapping[str, Prompt]]


def catalogue_path(prompts_dir: str | Path, language: str) -> Path:
    """Where the catalogue of `language` lives."""
    return Path(prompts_dir) / f"{language}.yaml"


def _parse_file(path: Path, language: str) -> tuple[dict[str, Prompt], list[Problem]]:
    """Prompts of one file plus every problem in it (line numbers from the YAML nodes)."""
    shown = str(path)
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"))
    except OSError as exc:
        return {}, [Problem(shown, 0, f"cannot read the prompt file ({exc.strerror}); create it")]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 0
        return {}, [Problem(shown, line, f"not valid YAML: {getattr(exc, 'problem', exc)}")]
    if not isinstance(root, yaml.MappingNode):
        return {}, [Problem(shown, 1, "must be a mapping of prompt key → text")]
    prompts: dict[str, Prompt] = {}
    problems: list[Problem] = []
    for key_node, value_node in root.value:
        key, line = str(key_node.value), key_node.start_mark.line + 1
        if key == pronunciations.SECTION:       # the admins' lexicon, not a prompt
            problems.extend(pronunciations.parse(value_node, shown)[1])
            continue
        if key in prompts:
            problems.append(Problem(shown, line, f"prompt '{key}' is defined twice; keep one"))
            continue
        text, voice, variants, problem = _prompt_value(value_node, language)
        if problem:
            problems.append(Problem(shown, line, f"prompt '{key}': {problem}"))
            continue
        prompts[key] = Prompt(key, text, voice, line, shown, variants)
    return prompts, problems


def _prompt_value(node: yaml.Node, language: str) -> tuple[str, str, tuple[tuple[str, str, str], ...], str]:
    """(text, voice, variants, problem) for one value node; problem is "" when it is fine."""
    variants: list[tuple[str, str, str]] = []
    if isinstance(node, yaml.ScalarNode):
        text, voice = str(node.value), language
    elif isinstance(node, yaml.MappingNode):
        fields = {str(k.value): v for k, v in node.value}
        unknown = {f for f in set(fields) - {"text", "voice"} if not _VARIANT.match(f)}
        if unknown or not all(isinstance(v, yaml.ScalarNode) for v in fields.values()) or "text" not in fields:
            return "", "", (), ("write `text: \"…\"`, optionally `voice: <language>` and "
                                "`if_<placeholder>_is_<value>: \"…\"`, nothing else")
        text = str(fields["text"].value)
        voice = str(fields["voice"].value) if "voice" in fields else language
        for field, value_node in fields.items():
            match = _VARIANT.match(field)
            if match:
                variants.append((match.group(1), match.group(2), str(value_node.value)))
    else:
        return "", "", (), "must be a text or a mapping with `text:`"
    if not text.strip() or any(not variant.strip() for _, _, variant in variants):
        return "", "", (), "text is empty; write what the line should say"
    return text, voice, tuple(variants), ""


def load_catalogue(prompts_dir: str | Path,
                   languages: Iterable[str] | None = None) -> tuple[dict[str, dict[str, Prompt]], list[Problem]]:
    """Read every language's file (default: every *.yaml in the directory) → (catalogue, problems)."""
    directory = Path(prompts_dir)
    if languages is None:
        languages = sorted(p.stem for p in directory.glob("*.yaml"))
    catalogue: dict[str, dict[str, Prompt]] = {}
    problems: list[Problem] = []
    for language in languages:
        prompts, found = _parse_file(catalogue_path(directory, language), language)
        catalogue[language] = prompts
        problems.extend(found)
    return catalogue, problems


def load_lexicons(prompts_dir: str | Path, languages: Iterable[str]) -> dict[str, Lexicon]:
    """Each language's `pronunciations:` (problems are reported by load_catalogue)."""
    return {language: pronunciations.load(catalogue_path(prompts_dir, language))[0] for language in languages}


def validate(catalogue: Catalogue, prompts_dir: str | Path,
             required: Mapping[str, frozenset[str]] = REQUIRED_KEYS) -> list[Problem]:
    """Problems across languages: missing keys, unknown placeholders, voices of no language."""
    problems: list[Problem] = []
    languages = sorted(catalogue)
    all_keys = set(required).union(*(set(p) for p in catalogue.values()))
    for language in languages:
        prompts = catalogue[language]
        for key in sorted(all_keys - set(prompts)):
            other = next((catalogue[o][key] for o in languages if key in catalogue[o]), None)
            why = "the call flow needs it" if key in required else f"{other.path}:{other.line} has it"
            problems.append(Problem(str(catalogue_path(prompts_dir, language)), 0,
                                    f"prompt '{key}' is missing in {language}; {why} — add it"))
        for prompt in prompts.values():
            problems.extend(_check_prompt(prompt, required, languages))
    return problems


def _check_prompt(prompt: Prompt, required: Mapping[str, frozenset[str]], languages: list[str]) -> list[Problem]:
    at = (prompt.path, prompt.line)
    try:
        used = prompt.placeholders
    except ValueError as exc:
        return [Problem(*at, f"prompt '{prompt.key}': malformed braces ({exc}); write {{name}} or {{{{ for a brace")]
    allowed = required.get(prompt.key, KNOWN_PLACEHOLDERS)
    problems = [Problem(*at, f"prompt '{prompt.key}': unknown placeholder {{{name}}}; "
                             f"allowed: {', '.join('{%s}' % a for a in sorted(allowed)) or 'none'}")
                for name in sorted(used - allowed)]
    if any(not name.isidentifier() for name in used):
        problems.append(Problem(*at, f"prompt '{prompt.key}': placeholders must be plain names like {{department}}"))
    main = {name for _, name, _, _ in string.Formatter().parse(prompt.text) if name}
    for name, _, _ in prompt.variants:
        if name not in main:
            problems.append(Problem(*at, f"prompt '{prompt.key}': if_{name}_is_… tests a placeholder "
                                         f"the text does not use; use one of {sorted(main) or 'none'}"))
    if prompt.voice not in languages:
        problems.append(Problem(*at, f"prompt '{prompt.key}': voice '{prompt.voice}' is not one of the "
                                     f"line's languages ({', '.join(languages)})"))
    return problems


def check_prompts(prompts_dir: str | Path, rules: Any = None) -> list[Problem]:
    """Every problem with the catalogues of the line's languages (`rules.languages`, else every file),
    their pronunciations included (IPA checked against each installed Piper voice of the language)."""
    languages = tuple(rules.languages) if rules is not None else None
    catalogue, problems = load_catalogue(prompts_dir, languages)
    problems += validate(catalogue, prompts_dir)
    for language, lexicon in load_lexicons(prompts_dir, catalogue).items():
        for name, model in installed_piper_voices(language):
            problems += pronunciations.check_phonemes(lexicon, PiperEngine(model).phoneme_symbols(),
                                                      str(catalogue_path(prompts_dir, language)), name)
    return problems


def installed_piper_voices(language: str) -> list[tuple[str, str]]:
    """(name, model path) of the Piper voices installed for `language` (IVR_PIPER_VOICES_DIR included)."""
    config = from_environment()
    directory = piper_voices_dir(config)
    found = []
    for name, voice_language in installed_voices(directory):
        files = voice_files(name, directory)
        if voice_language == language and files:
            found.append((name, str(files[0])))
    return found


def fill(prompt: Prompt, values: Mapping[str, Any]) -> str:
    """The prompt's text with its placeholders filled; a missing value is a `PromptError`."""
    missing = sorted(prompt.placeholders - set(values))
    if missing:
        raise PromptError(f"prompt '{prompt.key}' needs {', '.join(missing)} "
                          f"({prompt.path}:{prompt.line}); pass them to text()/speak()")
    return prompt.template(values).format_map({name: _spoken(value) for name, value in values.items()})


def _spoken(value: Any) -> str:
    """Values as the TTS should read them: numbers as numbers, everything else as text."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class CatalogueSource:
    """The catalogue of one prompts directory, re-read when a file in it changes."""

    def __init__(self, prompts_dir: str | Path) -> None:
        self.prompts_dir = Path(prompts_dir)
        self._lock = threading.Lock()
        self._stamp = self._mtimes()
        self._checked = time.monotonic()
        catalogue, problems = self._load()
        if problems:
            raise ConfigError(problems)
        self._catalogue: Catalogue = catalogue
        self._lexicons = load_lexicons(self.prompts_dir, catalogue)

    def _mtimes(self) -> tuple[tuple[str, int], ...]:
        return tuple(sorted((p.name, p.stat().st_mtime_ns) for p in self.prompts_dir.glob("*.yaml")))

    def _load(self) -> tuple[Catalogue, list[Problem]]:
        catalogue, problems = load_catalogue(self.prompts_dir)
        return catalogue, problems + validate(catalogue, self.prompts_dir)

    def current(self) -> Catalogue:
        """The newest valid catalogue (checks the files at most once per RELOAD_CHECK_S)."""
        if time.monotonic() - self._checked < RELOAD_CHECK_S or not self._lock.acquire(blocking=False):
            return self._catalogue
        try:
            self._checked = time.monotonic()
            stamp = self._mtimes()
            if stamp != self._stamp:
                self._stamp = stamp
                catalogue, problems = self._load()
                if problems:
                    log.error("prompt files changed but are invalid; keeping the last good prompts:\n%s",
                              "\n".join(str(p) for p in problems))
                else:
                    self._catalogue = catalogue
                    self._lexicons = load_lexicons(self.prompts_dir, catalogue)
                    log.info("prompts reloaded from %s", self.prompts_dir)
        except OSError as exc:
            log.error("cannot check the prompt files (%s); keeping the last good prompts", exc)
        finally:
            self._lock.release()
        return self._catalogue

    def lexicon(self, language: str) -> Lexicon:
        """The current pronunciations of `language` (reloaded with the prompts)."""
        self.current()
        return self._lexicons.get(language) or Lexicon()
