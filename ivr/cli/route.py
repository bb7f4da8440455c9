"""`ivr route` — what the line would do if a caller said TEXT as their first answer.

A stable interface other tools call: no server, no network. The classifier and rules are built
once, so `--batch` streams thousands of lines a second. Output fields (`--json`): text, language,
intent, department, confidence, action, explanation, alternatives (+ reason; + transcript, engine,
asr_confidence with audio).
"""
from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, TextIO
from zoneinfo import ZoneInfo

import click

from ivr.config import shipped
from ivr.routing.preview import Router
from ivr.routing.problems import ConfigError
from ivr.speech.transcribe import route_audio

def parse_when(value: str | None, zone: ZoneInfo) -> datetime:
    """ISO 8601 → aware datetime; naive times are in the city's zone; None → now."""
    if value is None:
        return datetime.now(zone)
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"--at {value!r} is not an ISO 8601 time; use e.g. 2026-03-02T09:30 or "
                         "2026-03-02T09:30-06:00") from None
    return when.replace(tzinfo=zone) if when.tzinfo is None else when


def route_line(router: Router, raw: str, base: Path, default_language: str | None, now: datetime) -> dict[str, Any]:
    """One --batch line → its output object; problems become {"error": …} with the input kept."""
    try:
        item = json.loads(raw)
    except json.JSONDecodeError as exc:
        return {"error": f"invalid JSON: {exc.msg} at column {exc.colno}"}
    if not isinstance(item, dict):
        return {"error": "each line must be a JSON object with a \"text\" (or \"audio\") field"}
    try:
        language = router.language(item.get("lang") or default_language)
        if isinstance(item.get("audio"), str):
            result = route_audio(router, base / item["audio"], language, now)
        elif isinstance(item.get("text"), str):
            result = router.route(item["text"], language, now)
        else:
            raise ValueError("missing \"text\": each line needs a \"text\" string (or an \"audio\" path)")
    except (ValueError, OSError, RuntimeError) as exc:  # bad text/lang, unreadable or undecodable audio
        return {**item, "error": str(exc)}
    kept = {k: v for k, v in item.items() if k not in result}
    clashes = {k: v for k, v in item.items() if k in result and k != "text" and v != result[k]}
    if clashes:
        kept["input"] = clashes  # e.g. a labelled "department": keep it beside the computed one
    return {**kept, **result}


def _human(result: dict[str, Any]) -> str:
    if "error" in result:
        return f"error: {result['error']}"
    target = result["department"] or "-"
    lines = [f"{result['action']} → {target} (intent {result['intent'] or '-'}, confidence {result['confidence']:.2f})",
             f"  {result['explanation']}", f"  {result['reason']}"]
    for alt in result["alternatives"]:
        lines.append(f"  or {alt['department'] or 'emergency'} ({alt['intent'] or '-'}) {alt['confidence']:.2f}")
    return "\n".join(lines)


def run_batch(router: Router, lines: Iterable[str], base: Path, language: str | None, now: datetime,
              out: TextIO, as_json: bool) -> int:
    """Stream lines to `out` in input order; returns the number of lines that gave an error."""
    errors = 0
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        result = route_line(router, raw, base, language, now)
        if "error" in result:
            errors += 1
            result = {"line": number, **result}
        if as_json:
            out.write(json.dumps(result, ensure_ascii=False) + "\n")
        else:
            out.write(f"{number}\t{result.get('action', 'error')}\t{result.get('department') or '-'}\t"
                      f"{result.get('confidence', 0):.2f}\t{result.get('text', result.get('error', ''))}\n")
    return errors


def register(cli: click.Group) -> None:
    """Add `ivr route` to `cli`."""

    @cli.command("route")
    @click.argument("text", required=False)
    @click.option("--lang", "language", help="Caller's language (default: the rules' first language).")
    @click.option("--at", "at", help="When the call happens, ISO 8601 (naive = city time; default now).")
    @click.option("--json", "as_json", is_flag=True, help="One JSON object per utterance.")
    @click.option("--batch", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                  help="JSON Lines file, one {\"text\": …} (or {\"audio\": …}) object per line.")
    @click.option("--audio", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                  help="A WAV recording of the caller; it is transcribed first.")
    @click.option("--rules", "rules_path", type=click.Path(dir_okay=False),
                  help="Rules file (default: $IVR_RULES_PATH or the shipped routing_rules.yaml).")
    def route(text: str | None, language: str | None, at: str | None, as_json: bool, batch: Path | None,
              audio: Path | None, rules_path: str | None) -> None:
        """What the line would do if a caller said TEXT first (no server, no network)."""
        if sum(x is not None for x in (text, batch, audio)) != 1:
            raise click.UsageError("give exactly one of TEXT, --batch FILE or --audio FILE")
        path = rules_path or os.environ.get("IVR_RULES_PATH") or str(shipped("routing_rules.yaml"))
        try:
            router = Router.load(path)
        except ConfigError as exc:
            raise click.ClickException(f"the rules have problems:\n{exc}") from None
        try:
            now = parse_when(at, router.timezone)
            if batch is not None:
                if language is not None:
                    router.language(language)
                with batch.open(encoding="utf-8") as lines:
                    errors = run_batch(router, lines, batch.parent, language, now, sys.stdout, as_json)
                if errors:
                    click.echo(f"{errors} line(s) could not be routed; see their \"error\" fields", err=True)
                return
            lang = router.language(language)
            if audio is not None:
                result = route_audio(router, audio, lang, now)
            else:
                result = router.route(text or "", lang, now)
        except ValueError as exc:  # bad --at/--lang, unreadable audio
            raise click.UsageError(str(exc)) from None
        except RuntimeError as exc:  # no local recogniser for --audio
            raise click.ClickException(str(exc)) from None
        click.echo(json.dumps(result, ensure_ascii=False) if as_json else _human(result))
