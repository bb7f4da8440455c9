"""The routing core is pure: importing it loads no web framework, database, speech or telephony code.

`lint-imports` (contracts in pyproject.toml) checks the import graph statically; this checks what a
fresh interpreter really loads, which also catches a parent package that imports an edge.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = ("ivr.routing.load", "ivr.routing.classify", "ivr.routing.decide", "ivr.routing.hours",
        "ivr.routing.menu", "ivr.routing.state")
# Third-party I/O and heavy edge libraries. (The stdlib's socket is not listed: pure libraries such as
# `holidays` load it through the standard library without doing any I/O.)
IO_LIBRARIES = ("flask", "werkzeug", "sqlalchemy", "alembic", "psycopg2", "psycopg", "twilio", "requests",
                "websockets", "gunicorn", "vosk", "pocketsphinx", "pyttsx3", "piper", "faster_whisper",
                "ctranslate2", "numpy", "huey", "redis")


def _loaded_by(modules: tuple[str, ...]) -> set[str]:
    code = ("import json, sys\nbefore = set(sys.modules)\n"
            + "".join(f"import {m}\n" for m in modules)
            + "print(json.dumps(sorted(set(sys.modules) - before)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


def test_importing_the_core_loads_only_the_core():
    loaded = _loaded_by(CORE)
    ours = {m for m in loaded if m == "ivr" or m.startswith("ivr.")}
    outside = sorted(m for m in ours if m != "ivr" and not m.startswith(("ivr.routing", "ivr.lang")))
    assert outside == [], f"the core pulled in edges: {outside}"
    io = sorted(m for m in loaded if m.split(".")[0] in IO_LIBRARIES)
    assert io == [], f"the core pulled in I/O libraries: {io}"
    assert "ivr.routing.decide" in loaded   # the probe really imported the core


def test_the_import_contracts_hold():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if lint is None:
        pytest.fail("lint-imports is missing: `pip install -e '.[test]'` installs import-linter")
    result = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout
