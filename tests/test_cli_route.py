"""`ivr route`: the stable command other tools call (single text, --batch, --audio, errors)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ivr.cli import cli

ROOT = Path(__file__).resolve().parent.parent
RULES = str(ROOT / "routing_rules.yaml")
MONDAY_10AM = "2026-03-02T10:00"      # roads are open (07:00-17:00 city time)
SUNDAY_10AM = "2026-03-01T10:00"      # roads are closed
FIELDS = {"text", "language", "intent", "department", "confidence", "action", "explanation", "alternatives"}
ACTIONS = {"transfer", "queue", "confirm", "menu", "operator", "voicemail", "after_hours", "emergency"}


def route(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["route", "--rules", RULES, *args])
    return result.exit_code, result.output


def route_json(*args: str) -> dict:
    code, output = route(*args, "--json")
    assert code == 0, output
    return json.loads(output)


def test_clear_request_is_transferred_when_open():
    out = route_json("there's a pothole on Main Street", "--at", MONDAY_10AM)
    assert FIELDS <= set(out)
    assert (out["intent"], out["department"], out["action"], out["language"]) == ("pothole", "roads", "transfer", "en")
    assert 0.75 <= out["confidence"] <= 1.0
    assert "'pothole'" in out["explanation"]
    assert isinstance(out["alternatives"], list)


def test_same_request_after_hours():
    out = route_json("there's a pothole on Main Street", "--at", SUNDAY_10AM)
    assert (out["department"], out["action"]) == ("roads", "after_hours")


def test_naive_and_aware_times_agree():
    # 10:00 in Chicago (CST, -06:00) is 16:00 UTC: both say the roads desk is open.
    naive = route_json("there's a pothole on my street", "--at", MONDAY_10AM)
    aware = route_json("there's a pothole on my street", "--at", "2026-03-02T16:00+00:00")
    late = route_json("there's a pothole on my street", "--at", "2026-03-02T23:30+00:00")
    assert naive["action"] == aware["action"] == "transfer"
    assert late["action"] == "after_hours"


def test_emergency_has_no_department():
    out = route_json("my house is on fire", "--at", MONDAY_10AM)
    assert (out["action"], out["department"], out["intent"]) == ("emergency", None, None)
    assert out["explanation"].startswith("emergency")


def test_person_request_reaches_the_operator():
    out = route_json("I want to talk to a real person", "--at", MONDAY_10AM)
    assert (out["department"], out["action"]) == ("operator", "operator")


def test_nonsense_gets_the_menu_and_vague_gets_confirmed():
    nonsense = route_json("purple elephant banana", "--at", MONDAY_10AM)
    assert (nonsense["action"], nonsense["department"], nonsense["confidence"]) == ("menu", None, 0.0)
    mixed = route_json("my water bill and my property tax bill", "--at", MONDAY_10AM)
    assert mixed["action"] == "confirm"
    assert {mixed["department"], *(a["department"] for a in mixed["alternatives"])} >= {"water", "finance"}
    assert all(set(a) == {"intent", "department", "confidence"} for a in mixed["alternatives"])


def test_spanish():
    out = route_json("hay un bache enorme en mi calle", "--lang", "es", "--at", MONDAY_10AM)
    assert (out["language"], out["department"]) == ("es", "roads")


def test_human_output_names_action_and_reason():
    code, output = route("there's a pothole on Main Street", "--at", MONDAY_10AM)
    assert code == 0 and output.startswith("transfer → roads") and "matched 'pothole'" in output


@pytest.mark.parametrize("args, message", [
    (["pothole", "--lang", "fr"], "unknown language 'fr'"),
    (["pothole", "--at", "next tuesday"], "not an ISO 8601 time"),
    ([], "exactly one of TEXT, --batch FILE or --audio FILE"),
])
def test_bad_arguments_are_usage_errors(args, message):
    code, output = route(*args)
    assert code == 2 and message in output


def test_broken_rules_file_lists_its_problems(tmp_path):
    bad = tmp_path / "rules.yaml"
    bad.write_text("languages: [en]\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["route", "--rules", str(bad), "pothole"])
    assert result.exit_code == 1 and "the rules have problems" in result.output and "rules.yaml:" in result.output


def test_batch_keeps_order_and_fields_and_survives_bad_lines(tmp_path):
    batch = tmp_path / "in.jsonl"
    lines = [json.dumps({"id": 1, "text": "there's a pothole on Main Street", "department": "roads"}),
             "{not json",
             json.dumps({"id": 3, "text": "hay un bache en la calle", "lang": "es"}),
             json.dumps({"id": 4}),
             "",
             json.dumps({"id": 6, "text": "my house is on fire", "lang": "xx"}),
             json.dumps({"id": 7, "text": "my house is on fire"})]
    batch.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["route", "--rules", RULES, "--batch", str(batch), "--json",
                                      "--lang", "en", "--at", MONDAY_10AM])
    assert result.exit_code == 0, result.output
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o.get("id") for o in out] == [1, None, 3, 4, 6, 7]
    assert out[0]["department"] == "roads" and out[0]["action"] == "transfer" and FIELDS <= set(out[0])
    assert out[1]["line"] == 2 and "invalid JSON" in out[1]["error"]
    assert out[2]["language"] == "es" and out[2]["lang"] == "es" and out[2]["department"] == "roads"
    assert out[3]["line"] == 4 and "missing \"text\"" in out[3]["error"]
    assert out[4]["line"] == 6 and "unknown language 'xx'" in out[4]["error"]
    assert out[5]["action"] == "emergency" and out[5]["action"] in ACTIONS
    assert "3 line(s) could not be routed" in result.stderr


def test_batch_keeps_a_label_that_clashes_with_a_computed_field(tmp_path):
    batch = tmp_path / "in.jsonl"
    batch.write_text(json.dumps({"text": "I need to renew my business license", "department": "roads"}) + "\n",
                     encoding="utf-8")
    out = json.loads(CliRunner().invoke(cli, ["route", "--rules", RULES, "--batch", str(batch), "--json",
                                              "--at", MONDAY_10AM]).stdout)
    assert out["department"] == "finance" and out["input"] == {"department": "roads"}


def test_batch_of_thousands_streams_every_line(tmp_path):
    texts = ["there's a pothole on Main Street", "my trash wasn't picked up", "operator", "my house is on fire"]
    batch = tmp_path / "big.jsonl"
    batch.write_text("".join(json.dumps({"n": i, "text": texts[i % 4]}) + "\n" for i in range(2000)), encoding="utf-8")
    result = CliRunner().invoke(cli, ["route", "--rules", RULES, "--batch", str(batch), "--json", "--at", MONDAY_10AM])
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["n"] for o in out] == list(range(2000))
    assert {o["action"] for o in out} <= ACTIONS and out[3]["action"] == "emergency"


LIVE_WIRE = "a power line is down and sparking"    # the 1-best hears "… and parking"


def speech_file(directory: Path, name: str, text: str) -> Path:
    """Real caller speech (piper, 8 kHz μ-law, cached) copied to `directory/name`."""
    from speechgen import synthesize_phone_audio

    target = directory / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(synthesize_phone_audio(text).read_bytes())
    return target


def route_audio(*args: str) -> CliRunner:
    # The embedded engine: the same recogniser a live call on this machine would use for English.
    return CliRunner(env={"IVR_SPEECH_ENGINE": "pocketsphinx"}).invoke(
        cli, ["route", "--rules", RULES, "--at", MONDAY_10AM, "--json", *args])


@pytest.mark.speech
def test_audio_is_transcribed_then_routed(tmp_path):
    wav = speech_file(tmp_path, "call.wav", "I want to report a pothole on Main Street")
    result = route_audio("--audio", str(wav))
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert FIELDS <= set(out) and out["engine"] == "pocketsphinx"
    assert "pothole" in out["transcript"].split() and out["text"] == out["transcript"]
    assert 0.0 < out["asr_confidence"] <= 1.0
    # Routed or confirmed first, by the recogniser's confidence — never another department.
    assert out["department"] == "roads" and out["action"] in ("transfer", "confirm")


@pytest.mark.speech
def test_audio_of_an_emergency_the_transcript_can_lose_is_an_emergency(tmp_path):
    out = json.loads(route_audio("--audio", str(speech_file(tmp_path, "wire.wav", LIVE_WIRE))).stdout)
    assert (out["action"], out["department"]) == ("emergency", None)
    assert "parking" in out["transcript"] and "emergency watch" in out["explanation"]


@pytest.mark.speech
def test_batch_audio_paths_are_relative_to_the_batch_file(tmp_path):
    speech_file(tmp_path / "calls", "a.wav", "my trash wasn't picked up this week")
    (tmp_path / "calls" / "b.wav").write_bytes(b"not audio")
    batch = tmp_path / "batch.jsonl"
    batch.write_text(json.dumps({"id": "a", "audio": "calls/a.wav"}) + "\n"
                     + json.dumps({"id": "b", "audio": "calls/b.wav"}) + "\n"
                     + json.dumps({"id": "c", "audio": "calls/missing.wav"}) + "\n", encoding="utf-8")
    result = route_audio("--batch", str(batch))
    first, second, third = (json.loads(line) for line in result.stdout.splitlines())
    assert first["id"] == "a" and first["audio"] == "calls/a.wav" and first["engine"] == "pocketsphinx"
    assert first["department"] == "sanitation" and "trash" in first["transcript"]
    assert second["id"] == "b" and second["line"] == 2 and "error" in second and "engine" not in second
    assert third["line"] == 3 and "missing.wav" in third["error"]
    assert "2 line(s) could not be routed" in result.stderr


@pytest.mark.speech
def test_audio_errors_say_what_to_do(tmp_path):
    junk = tmp_path / "x.wav"
    junk.write_bytes(b"RIFF")
    unreadable = route_audio("--audio", str(junk))
    assert unreadable.exit_code == 2 and "not a WAV file" in unreadable.output
    wav = speech_file(tmp_path, "call.wav", "I want to report a pothole on Main Street")
    no_engine = CliRunner(env={"IVR_SPEECH_ENGINE": "keypad"}).invoke(
        cli, ["route", "--rules", RULES, "--audio", str(wav), "--json"])
    assert no_engine.exit_code == 1 and "no local recogniser" in no_engine.output
