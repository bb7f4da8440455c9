"""The live routing rules of a running app: loaded at start, re-read when the file changes.

This is the app-layer edge of the routing core: it stats and reads the rules file and talks to
Flask, so it lives outside `ivr.routing`, which stays pure (an import-linter contract checks it).

- `init_app(app)` loads `IVR_RULES_PATH`; an invalid file stops the app from starting.
- `current_rules()` / `current_classifier()` return the rules and classifier serving now.
  Each call may notice a changed file (mtime/size, looked at no more than once a second per
  process) and swap in the new rules; an invalid new file is logged with every problem and
  the last good rules keep serving.
- `check_now()` forces that look immediately (tests, admin tooling).
- `check_files(rules_path, prompts_dir)` lists every problem in a rules file and the prompts.
"""
from __future__ import annotations

import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import Callable

from flask import Flask, current_app

from ivr import metrics, prompts
from ivr.prompts.sms_texts import check_sms_texts, sms_dir
from ivr.routing.classify import Classifier
from ivr.routing.problems import ConfigError, Problem
from ivr.routing.rules import Rules
from ivr.routing.load import load_rules
from ivr.store.privacy import mask_number

log = logging.getLogger(__name__)
# Phone-number-like runs in problem messages ("'312 555 0105' is not a valid phone number").
_NUMBER_RUN = re.compile(r"\+?\d[\d\s().-]{5,}\d")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

EXTENSION = "ivr.rules"
#: Seconds between looks at the file: an edit shows up within a second, and a busy server
#: does not stat the file on every webhook.
CHECK_INTERVAL = 1.0

_Stamp = tuple[int, int] | None  # (mtime_ns, size) of the file; None when it cannot be read


class RulesSource:
    """Holds the current (rules, classifier) pair and replaces both together on a good reload."""

    def __init__(self, path: str | Path, *, reload: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path)
        self.reload_enabled = reload
        self._clock = clock
        self._lock = threading.Lock()
        self._stamp = self._stat()
        rules = load_rules(self.path)   # ConfigError propagates: refuse to start
        self._current: tuple[Rules, Classifier | None] = (rules, self._new_classifier(rules))
        self._next_check = clock() + CHECK_INTERVAL

    def rules(self) -> Rules:
        """The rules serving now (after a throttled look for a changed file)."""
        self.maybe_reload()
        return self._current[0]

    def classifier(self) -> Classifier:
        """The classifier built from `rules()`."""
        self.maybe_reload()
        rules, classifier = self._current
        if classifier is None:
            # The classifier was not buildable when the rules loaded (implementation pending);
            # build now so a real error reaches the caller instead of being hidden.
            classifier = Classifier(rules)
            with self._lock:
                if self._current[0] is rules:
                    self._current = (rules, classifier)
        return classifier

    def maybe_reload(self, *, force: bool = False) -> bool:
        """Re-read the file if it changed; True when new rules were swapped in."""
        now = self._clock()
        if not force and (not self.reload_enabled or now < self._next_check):
            return False
        # Another thread already looking is as good as looking ourselves: never queue requests.
        if not self._lock.acquire(blocking=force):
            return False
        try:
            self._next_check = now + CHECK_INTERVAL
            stamp = self._stat()
            if stamp == self._stamp:
                return False
            self._stamp = stamp   # judge each version once, not every second
            return self._load_changed()
        finally:
            self._lock.release()

    def _load_changed(self) -> bool:
        try:
            rules = load_rules(self.path)
        except ConfigError as exc:
            log.error("rules file %s changed but is invalid; still serving the rules loaded from it "
                      "earlier. Fix these and save again:\n%s", self.path, _for_log(exc))
            metrics.RULES_RELOADS_REFUSED.inc()
            return False
        try:
            classifier = self._new_classifier(rules)
        except Exception:  # noqa: BLE001 — any failure here must not take the phone line down
            log.exception("rules file %s is valid but the classifier cannot be built from it; "
                          "still serving the previous rules", self.path)
            metrics.RULES_RELOADS_REFUSED.inc()
            return False
        self._current = (rules, classifier)
        log.info("reloaded rules from %s: %d departments, %d intents", self.path,
                 len(rules.departments), len(rules.intents))
        metrics.RULES_RELOADS.inc()
        return True

    @staticmethod
    def _new_classifier(rules: Rules) -> Classifier | None:
        try:
            return Classifier(rules)
        except NotImplementedError:
            return None

    def _stat(self) -> _Stamp:
        try:
            info = os.stat(self.path)
        except OSError:
            return None
        return (info.st_mtime_ns, info.st_size)


def _for_log(error: ConfigError) -> str:
    """The problems with phone numbers masked: logs never carry a full number (FILE:LINE finds it)."""
    def mask(match: re.Match[str]) -> str:
        run = match.group(0)
        if _DATE.fullmatch(run) or sum(c.isdigit() for c in run) < 7:
            return run   # dates and short numbers are not phone numbers
        return mask_number(run)

    return _NUMBER_RUN.sub(mask, str(error))


def init_app(app: Flask) -> None:
    """Load the rules named by IVR_RULES_PATH; raise `ConfigError` (refuse to start) if invalid."""
    path = app.config["IVR_RULES_PATH"]
    try:
        source = RulesSource(path, reload=bool(app.config.get("IVR_RULES_RELOAD", True)))
    except ConfigError as exc:
        log.error("cannot start: the rules file %s is invalid:\n%s", path, _for_log(exc))
        raise
    app.extensions[EXTENSION] = source


def _source() -> RulesSource:
    return current_app.extensions[EXTENSION]


def current_rules() -> Rules:
    """The rules the current app is serving."""
    return _source().rules()


def current_classifier() -> Classifier:
    """The classifier for `current_rules()`."""
    return _source().classifier()


def check_now() -> bool:
    """Look at the rules file right away (no one-second wait); True when new rules were loaded."""
    return _source().maybe_reload(force=True)


def check_files(rules_path: str, prompts_dir: str | None) -> tuple[Rules | None, list[Problem]]:
    """Every problem in the rules file and, when `prompts_dir` is given, the prompts: what
    `ivr check` reports and what the console checks before it saves an edit."""
    problems: list[Problem] = []
    rules: Rules | None = None
    try:
        rules = load_rules(rules_path)
    except ConfigError as exc:
        problems.extend(exc.problems)
    if prompts_dir:
        problems.extend(prompts.check_prompts(prompts_dir, rules))
        languages = rules.languages if rules is not None else sorted(p.stem for p in sms_dir(prompts_dir).glob("*.yaml"))
        problems.extend(check_sms_texts(prompts_dir, languages))
    return rules, problems
