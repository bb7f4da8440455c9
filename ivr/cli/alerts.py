"""`ivr alerts send|list|show|end|resend` — topic alerts for subscribers and callers.

`send` stores the alert (callers whose request is one of the topic's intents hear it first while it
is active) and queues a text for every subscriber through the outbox, rate-limited (`--rate`,
`IVR_ALERT_RATE`, default 1 text per second). Nothing here prints a phone number.
"""
from __future__ import annotations

import json
import re
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import click

from ivr.cli.db import session
from ivr.config import from_environment
from ivr.prompts.sms_texts import SmsTexts
from ivr.routing.load import load_rules

# A command imports the store, the app and the job queue when it runs, not here: see ivr/cli/__init__.py.

_UNIT_S = {"m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([mhd])\s*$", re.IGNORECASE)


def parse_until(value: str | None, now: datetime) -> datetime | None:
    """"2h", "90m", "1d", or an ISO 8601 time (UTC when it has no zone) → an aware UTC instant."""
    if not value:
        return None
    match = _DURATION.match(value)
    if match:
        amount, unit = float(match.group(1)), match.group(2).lower()
        return now + timedelta(seconds=amount * _UNIT_S[unit])
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(f"'{value}' is neither a duration (2h, 90m, 1d) nor an ISO 8601 time "
                                 "(2026-12-08T18:00-06:00)", param_hint="--until") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


@contextmanager
def _context(url: str | None) -> Iterator[tuple[Any, Any, Any]]:
    """(session, rules, SMS texts) for a command, outside the web app."""
    settings = from_environment()
    rules = load_rules(settings["IVR_RULES_PATH"])
    with session(url) as s:
        yield s, rules, SmsTexts(settings["IVR_PROMPTS_DIR"], rules.languages)


def _when(value: datetime | None) -> str:
    return value.isoformat(timespec="minutes") if value else "-"


def _describe(alert: Any, delivery: dict[str, int]) -> dict[str, Any]:
    return {"id": alert.id, "topic": alert.topic, "message": dict(alert.message), "created_by": alert.created_by,
            "created_at": _when(alert.created_at), "until": _when(alert.until), "ended_at": _when(alert.ended_at),
            "texts_queued": alert.recipients, "delivery": delivery, "heard": dict(alert.heard)}


def register(cli: click.Group) -> None:
    """Add the `alerts` command group to `cli`."""
    url_option = click.option("--url", envvar="IVR_DATABASE_URL", help="Database URL (default: the app's).")

    @cli.group("alerts")
    def alerts_group() -> None:
        """Topic alerts: text subscribers, tell callers first."""

    @alerts_group.command("send")
    @click.argument("topic")
    @click.option("--message", "message", required=True, help="The alert in the line's first language.")
    @click.option("--message-es", "message_es", default=None, help="The alert in Spanish.")
    @click.option("--message-in", "others", nargs=2, multiple=True, metavar="LANG TEXT",
                  help="The alert in another language of the rules (repeatable).")
    @click.option("--until", default=None, help="When it ends: 2h, 90m, 1d or an ISO 8601 time (default: `ivr alerts end`).")
    @click.option("--by", "by", default="cli", show_default=True, help="Who publishes it (kept with the alert).")
    @click.option("--rate", type=float, envvar="IVR_ALERT_RATE", default=1.0, show_default=True,
                  help="Texts per second (the number's throughput at Twilio).")
    @click.option("--again", is_flag=True, help="Publish even if the same message is already active on the topic.")
    @url_option
    def send(topic: str, message: str, message_es: str | None, others: tuple[tuple[str, str], ...],
             until: str | None, by: str, rate: float, again: bool, url: str | None) -> None:
        """Publish an alert on TOPIC and text its subscribers."""
        from ivr.jobs import alerts as publishing
        from ivr.store import alerts

        now = datetime.now(timezone.utc)
        ends = parse_until(until, now)
        with _context(url) as (s, rules, texts):
            try:
                found = publishing.find_topic(rules, topic)
            except ValueError as exc:
                raise click.ClickException(str(exc)) from None
            written = {rules.default_language: message}
            if message_es:
                written["es"] = message_es
            for language, text in others:
                if language not in rules.languages:
                    raise click.BadParameter(f"'{language}' is not a language of the rules ({', '.join(rules.languages)})",
                                             param_hint="--message-in")
                written[language] = text
            same = [a for a in alerts.active_alerts(s, now) if a.topic == found.id and dict(a.message) == written]
            if same and not again:
                raise click.ClickException(f"alert {same[0].id} with this message is already active on '{found.id}' — "
                                           f"`ivr alerts resend {same[0].id}` texts new subscribers; --again publishes a second one")
            try:
                alert, queued = publishing.publish(s, rules, texts, topic_id=found.id, message=written, by=by,
                                                   until=ends, now=now, rate=rate)
            except ValueError as exc:
                raise click.ClickException(str(exc)) from None
            s.commit()
        last = now + timedelta(seconds=max(queued - 1, 0) / rate)
        click.echo(f"alert {alert.id} on '{found.id}' ({found.name.get(rules.default_language, found.id)}): "
                   f"{queued} text{'s' if queued != 1 else ''} queued at {rate:g}/s (the last due {_when(last)}); "
                   f"callers about {', '.join(found.intents)} hear it first until {_when(ends) if ends else '`ivr alerts end ' + str(alert.id) + '`'}")

    @alerts_group.command("resend")
    @click.argument("alert_id", type=int)
    @click.option("--rate", type=float, envvar="IVR_ALERT_RATE", default=1.0, show_default=True)
    @url_option
    def resend(alert_id: int, rate: float, url: str | None) -> None:
        """Text ALERT_ID to subscribers who have not had it yet (e.g. who subscribed since)."""
        from ivr.jobs import alerts as publishing
        from ivr.store import alerts

        now = datetime.now(timezone.utc)
        with _context(url) as (s, rules, texts):
            alert = alerts.get_alert(s, alert_id)
            if alert is None or not alert.active(now):
                raise click.ClickException(f"alert {alert_id} is not active — see `ivr alerts list`")
            queued = publishing.fan_out(s, rules, texts, alert, now=now, rate=rate)
            s.commit()
        click.echo(f"alert {alert_id}: {queued} more text{'s' if queued != 1 else ''} queued")

    @alerts_group.command("list")
    @click.option("--active", is_flag=True, help="Only alerts active now.")
    @click.option("--limit", type=int, default=20, show_default=True)
    @click.option("--json", "as_json", is_flag=True)
    @url_option
    def list_(active: bool, limit: int, as_json: bool, url: str | None) -> None:
        """Recent alerts, newest first: texts queued and delivered, callers and texters who heard it."""
        from ivr.jobs import alerts as publishing
        from ivr.store import alerts

        now = datetime.now(timezone.utc)
        with _context(url) as (s, _rules, _texts):
            found = alerts.list_alerts(s, limit=limit, active_at=now if active else None)
            rows = [_describe(a, publishing.delivery(s, a.id)) for a in found]
            counts = alerts.subscriber_counts(s)
        if as_json:
            click.echo(json.dumps({"alerts": rows, "subscribers": counts}, ensure_ascii=False, indent=2))
            return
        if not rows:
            click.echo("no alerts")
        for row, alert in zip(rows, found):
            state = "active" if alert.active(now) else ("ended " + row["ended_at"] if alert.ended_at else "expired")
            delivered = ", ".join(f"{k} {v}" for k, v in sorted(row["delivery"].items())) or "none"
            text = next(iter(alert.message.values()), "")
            click.echo(f"{alert.id:>4}  {alert.topic:12} {row['created_at']}  until {row['until']:16}  {state:8}  "
                       f"texts {alert.recipients} ({delivered})  heard: voice {alert.heard['voice']}, "
                       f"sms {alert.heard['sms']}  {text[:60]}")
        click.echo("subscribers: " + (", ".join(f"{t} {n}" for t, n in sorted(counts.items())) or "none"))

    @alerts_group.command("end")
    @click.argument("alert_id", type=int)
    @click.option("--by", "by", default="cli", show_default=True)
    @url_option
    def end(alert_id: int, by: str, url: str | None) -> None:
        """End ALERT_ID now: callers stop hearing it (texts already sent stay sent)."""
        from ivr.store import alerts

        with _context(url) as (s, _rules, _texts):
            alert = alerts.end_alert(s, alert_id, by=by)
            if alert is None:
                raise click.ClickException(f"no alert {alert_id} — see `ivr alerts list`")
            s.commit()
        click.echo(f"alert {alert_id} on '{alert.topic}' ended at {_when(alert.ended_at)}; "
                   f"heard by {alert.heard['voice']} callers and {alert.heard['sms']} texters")
