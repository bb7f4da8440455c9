"""`ivr calls` — what the line did and why, read from the call database (for admins).

`ivr calls` lists recent calls; `ivr calls CALLSID` tells one call's story: each question, what
the caller said or pressed, how sure the line was, and every decision with its reason. Callers'
numbers are masked unless `--show-numbers` is given (the output is easily pasted into tickets).
"""
from __future__ import annotations

import json
from typing import Any

import click

from ivr.cli.db import database_url
from ivr.store.privacy import mask_number, mask_record

# A command imports the store, the app and the job queue when it runs, not here: see ivr/cli/__init__.py.


def _number(value: str | None, show: bool) -> str:
    if show or (value or "").startswith("hash:"):    # a hashed number (retention) cannot be dialled
        return value or "?"
    return mask_number(value)


def _numbers(document: dict[str, Any], show: bool) -> dict[str, Any]:
    return document if show else mask_record(document)


def _listing(calls: list[dict[str, Any]], show: bool) -> list[str]:
    lines = []
    for call in calls:
        detail = call.get("outcome_detail") or {}
        where = detail.get("department") or ""
        lines.append(f"{(call['started'] or '')[:19]}  {call['sid']}  {_number(call['from'], show):>14}  "
                     f"{call['language'] or '?':2}  {call['outcome'] or call['status'] or '?':12} {where}")
    return lines


def _story(call: dict[str, Any], show: bool) -> list[str]:
    detail = call.get("outcome_detail") or {}
    lines = [f"call {call['sid']} from {_number(call['from'], show)} ({call['language']}), "
             f"started {call['started']}, {call['status']}, outcome {call['outcome'] or 'none yet'}"
             + (f": {detail.get('department')} — {detail.get('reason')}" if detail else "")]
    for turn in call["turns"]:
        answer = f"pressed {turn['digits']}" if turn["digits"] else \
            (f"said {turn['heard']!r}" if turn["heard"] else "said nothing")
        sure = f" (recogniser {turn['confidence']:.2f})" if turn["confidence"] is not None else ""
        lines.append(f"  [{turn['step']}] line asked: {turn['prompt'] or '—'}")
        lines.append(f"      caller {answer}{sure}")
        reading = turn.get("classification") or {}
        if reading.get("explanation"):
            lines.append(f"      understood: {reading['explanation']}")
        decision = turn.get("decision") or {}
        if decision:
            lines.append(f"      → {decision.get('kind')}: {decision.get('reason')}")
    for decision in call["decisions"]:
        if "after" in decision:   # decisions between turns: after a dial, at queue exit …
            lines.append(f"  [{decision.get('after') or 'event'}] → {decision.get('kind')}: {decision.get('reason')}")
    for message in call["messages"]:
        lines.append(f"  message for {message['department']}: {message['kind']} {message['recording_url'] or ''}".rstrip())
    return lines


def register(cli: click.Group) -> None:
    """Add `ivr calls` to `cli`."""

    @cli.command("calls")
    @click.argument("call_sid", required=False)
    @click.option("--limit", default=20, show_default=True, help="How many recent calls to list.")
    @click.option("--url", envvar="IVR_DATABASE_URL", help="Database URL (default: the app's).")
    @click.option("--json", "as_json", is_flag=True, help="The API's JSON document instead of text (numbers masked too).")
    @click.option("--show-numbers", is_flag=True, help="Print callers' numbers in full.")
    def calls(call_sid: str | None, limit: int, url: str | None, as_json: bool, show_numbers: bool) -> None:
        """Recent calls, or the story of CALL_SID: questions, answers, decisions and reasons."""
        from sqlalchemy.orm import Session

        from ivr.store import db, history

        engine = db.make_engine(database_url(url))
        try:
            with Session(engine) as session:
                if call_sid:
                    found = history.call_record(session, call_sid)
                    if found is None:
                        raise click.ClickException(f"no call {call_sid!r} in this database")
                    lines = [json.dumps(_numbers(found, show_numbers), indent=2)] if as_json \
                        else _story(found, show_numbers)
                else:
                    try:
                        recent = history.recent_calls(session, limit)
                    except ValueError as exc:
                        raise click.BadParameter(str(exc), param_hint="--limit") from None
                    lines = [json.dumps([_numbers(call, show_numbers) for call in recent], indent=2)] if as_json else \
                        (_listing(recent, show_numbers) or ["no calls yet"])
        finally:
            engine.dispose()
        click.echo("\n".join(lines))
