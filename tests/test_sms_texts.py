"""The SMS texts (prompts/sms/<lang>.yaml): checked by `ivr check`, filled by the channel."""
from __future__ import annotations

import shutil

from click.testing import CliRunner

from conftest import ROOT, RULES_PATH
from ivr.cli import cli
from ivr.prompts.sms_texts import KEYS, check_sms_texts, fill, parse


def test_the_shipped_texts_have_every_key_in_every_language():
    assert check_sms_texts(ROOT / "prompts", ["en", "es"]) == []
    for language in ("en", "es"):
        texts, _ = parse(ROOT / "prompts" / "sms" / f"{language}.yaml")
        assert set(texts) == set(KEYS)


def test_fill_joins_parts_and_lists():
    texts = {"choose": "Which is it? Reply {choices}.", "choice": "{digit} for {description}", "help": "Help."}
    parts = [("choose", {"choices": [("choice", {"digit": 1, "description": "a pothole"}),
                                     ("choice", {"digit": 2, "description": "a sinkhole"})]}), ("help", {})]
    assert fill(texts, parts) == "Which is it? Reply 1 for a pothole; 2 for a sinkhole. Help."


def test_ivr_check_reports_sms_text_mistakes_at_their_line(tmp_path):
    prompts = tmp_path / "prompts"
    shutil.copytree(ROOT / "prompts", prompts)
    spanish = prompts / "sms" / "es.yaml"
    text = spanish.read_text(encoding="utf-8")
    text = text.replace('opened: "Caso {case}', 'opened: "Caso {caso}').replace("\nstopped:", "\n# stopped:")
    spanish.write_text(text, encoding="utf-8")
    line = next(n for n, row in enumerate(text.splitlines(), 1) if row.startswith("opened:"))
    result = CliRunner().invoke(cli, ["check", str(RULES_PATH), "--prompts-dir", str(prompts)])
    assert result.exit_code == 1
    assert f"{spanish}:{line}: SMS text 'opened': unknown placeholder {{caso}}" in result.stderr
    assert f"{spanish}:0: SMS text 'stopped' is missing" in result.stderr
