"""`ivr check [PATH]`: exit 0 and a summary when valid, exit 1 and FILE:LINE problems on stderr."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest
from click.testing import CliRunner

import ivr.prompts
from conftest import RULES_PATH, ROOT
from ivr.cli import cli
from ivr.routing.problems import Problem

PROBLEM_LINE = re.compile(r"^(?P<path>.+):(?P<line>\d+): (?P<message>.+)$")


@pytest.fixture
def run(monkeypatch):
    """Invoke `ivr check` in-process with a clean IVR_* environment."""
    for name in ("IVR_RULES_PATH", "IVR_PROMPTS_DIR"):
        monkeypatch.delenv(name, raising=False)

    def invoke(*args: str, env: dict[str, str] | None = None):
        return CliRunner().invoke(cli, ["check", *args], env=env)
    return invoke


@pytest.fixture
def broken_rules(tmp_path):
    text = RULES_PATH.read_text(encoding="utf-8")
    text = text.replace("  route: 0.75", "  route: 0.2", 1)                       # below confirm
    text = text.replace('line: "+1 312 555 0104"', 'line: "555-0104"', 1)          # no country code
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_rules_are_valid(run):
    result = run()
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    (summary,) = result.stdout.splitlines()
    assert summary.startswith(f"{RULES_PATH}: OK — 14 departments, ")
    assert "languages en, es" in summary


def test_invalid_file_exits_1_with_one_line_per_problem(run, broken_rules):
    result = run(str(broken_rules), "--no-prompts")
    assert result.exit_code == 1
    assert result.stdout == ""
    *problems, footer = result.stderr.splitlines()
    assert footer.startswith("2 problems found")
    parsed = [PROBLEM_LINE.match(line) for line in problems]
    assert all(parsed), problems
    text = broken_rules.read_text(encoding="utf-8").splitlines()
    for match in parsed:
        assert match["path"] == str(broken_rules)
        assert 1 <= int(match["line"]) <= len(text)
    messages = {text[int(m["line"]) - 1].strip(): m["message"] for m in parsed}
    assert "is below thresholds.confirm" in messages["route: 0.2"]
    assert "add the '+' and country code" in messages['line: "555-0104"']


def test_default_path_comes_from_ivr_rules_path(run, broken_rules):
    result = run("--no-prompts", env={"IVR_RULES_PATH": str(broken_rules)})
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{broken_rules}:")


def test_missing_file_is_reported(run, tmp_path):
    result = run(str(tmp_path / "missing.yaml"))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{tmp_path / 'missing.yaml'}:0: cannot read the rules file")


def test_prompt_problems_are_reported_the_same_way(run, monkeypatch, tmp_path):
    seen = {}

    def fake_check_prompts(prompts_dir, rules):
        seen.update(prompts_dir=prompts_dir, languages=rules.languages)
        return [Problem(f"{prompts_dir}/es.yaml", 7, "prompt 'welcome' has no Spanish text — add it")]

    monkeypatch.setattr(ivr.prompts, "check_prompts", fake_check_prompts)
    result = run("--prompts-dir", str(tmp_path))
    assert result.exit_code == 1
    assert seen == {"prompts_dir": str(tmp_path), "languages": ("en", "es")}
    assert result.stderr.splitlines()[0] == f"{tmp_path}/es.yaml:7: prompt 'welcome' has no Spanish text — add it"


def test_console_script_entry_point(broken_rules):
    """The installed `ivr` command behaves like the in-process one (exit status and streams)."""
    done = subprocess.run([sys.executable, "-c", "from ivr.cli import main; main()", "check", "--no-prompts",
                           str(broken_rules)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 1
    assert done.stdout == ""
    assert PROBLEM_LINE.match(done.stderr.splitlines()[0])
