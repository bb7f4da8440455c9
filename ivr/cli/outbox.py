"""`ivr outbox` — what the line has sent, is sending, and gave up on (texts, e-mails, webhooks, Open311).

    ivr outbox stats                      rows by kind and status, the oldest waiting
    ivr outbox list [--status dead] [--kind sms] [--since 2026-12-01] [--limit 50]
    ivr outbox show ID                    one row: attempts, last error, provider id, payload
    ivr outbox retry ID… | --all-dead     dead rows back to pending (fresh attempts)

Citizens' numbers are masked (in targets and payloads) unless `--show-numbers` is given.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import click

from ivr import create_app
from ivr.store.privacy import mask_number

# A command imports the store, the app and the job queue when it runs, not here: see ivr/cli/__init__.py.


def _target(kind: str, target: str, show: bool) -> str:
    return target if show or kind != "sms" else mask_number(target)


def _payload(payload: dict[str, Any], show: bool) -> dict[str, Any]:
    if show:
        return payload
    masked: dict[str, Any] = {}
    for key, value in payload.items():
        if isinstance(value, dict):
            masked[key] = _payload(value, show)
        elif key in ("contact_phone", "phone", "to", "from") and isinstance(value, str):
            masked[key] = mask_number(value)
        else:
            masked[key] = value
    return masked


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _open(url: str | None) -> tuple[Any, Any]:
    """(engine, wake) — with no --url, the app's database and its job queue (to wake a worker)."""
    from ivr.store import db

    if url:
        return db.make_engine(url), None
    app = create_app({"IVR_WARM": False})
    from ivr.jobs.outbox import wake

    return db.engine(app), wake


def register(cli: click.Group) -> None:
    """Add the `outbox` command group to `cli`."""

    @cli.group("outbox")
    def outbox_group() -> None:
        """Messages the line sends: texts, department e-mails, webhooks, Open311 posts."""

    # No envvar: without --url the app is built (IVR_DATABASE_URL, migrations, the job queue to wake).
    url_option = click.option("--url", help="Database URL (default: the app's, brought up to date).")
    show_option = click.option("--show-numbers", is_flag=True, help="Print citizens' numbers in full.")

    @outbox_group.command("stats")
    @url_option
    def stats(url: str | None) -> None:
        """Rows by kind and status; how long the oldest waiting row has waited."""
        from sqlalchemy.orm import Session

        from ivr.store import outbox as store

        engine, _wake = _open(url)
        with Session(engine) as s:
            found = store.stats(s)
        kinds = sorted({kind for kind, _status in found.counts})
        click.echo(f"{'kind':8} " + " ".join(f"{status:>8}" for status in store.STATUSES))
        for kind in kinds or ["-"]:
            click.echo(f"{kind:8} " + " ".join(f"{found.counts.get((kind, status), 0):>8}" for status in store.STATUSES))
        totals = found.by_status()
        click.echo(f"{'all':8} " + " ".join(f"{totals[status]:>8}" for status in store.STATUSES))
        if found.oldest_waiting:
            age = (datetime.now(timezone.utc) - found.oldest_waiting).total_seconds()
            click.echo(f"waiting: {found.waiting}, oldest {age:.0f} s, next due {_when(found.next_due)} UTC")
        else:
            click.echo("waiting: 0")

    @outbox_group.command("list")
    @click.option("--status", type=click.Choice(["pending", "sending", "sent", "failed", "dead"]))
    @click.option("--kind", type=click.Choice(["sms", "email", "webhook", "open311"]))
    @click.option("--since", type=click.DateTime(), help="Only rows created since (UTC).")
    @click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
    @url_option
    @show_option
    def list_rows(status: str | None, kind: str | None, since: datetime | None, limit: int, url: str | None,
                  show_numbers: bool) -> None:
        """Newest rows first: id, created, kind, status, attempts, target, last error."""
        from sqlalchemy.orm import Session

        from ivr.store import outbox as store

        engine, _wake = _open(url)
        since_utc = since.replace(tzinfo=timezone.utc) if since else None
        with Session(engine) as s:
            rows = store.search(s, status=status, kind=kind, since=since_utc, limit=limit)
        if not rows:
            click.echo("no messages")
            return
        for row in rows:
            error = f"  {row.last_error.splitlines()[0][:80]}" if row.last_error else ""
            status = f"{row.status}/{row.delivery_status}" if row.delivery_status else row.status
            click.echo(f"{row.id:>7}  {_when(row.created_at)}  {row.kind:7}  {status:7}  {row.attempts:>2}  "
                       f"{_target(row.kind, row.target, show_numbers)}{error}")

    @outbox_group.command("show")
    @click.argument("row_id", type=int)
    @url_option
    @show_option
    def show(row_id: int, url: str | None, show_numbers: bool) -> None:
        """One row in full (numbers masked)."""
        from sqlalchemy.orm import Session

        from ivr.store import outbox as store

        engine, _wake = _open(url)
        with Session(engine) as s:
            row = store.get(s, row_id)
        if row is None:
            raise click.ClickException(f"no outbox row {row_id}")
        click.echo(f"#{row.id} {row.kind} to {_target(row.kind, row.target, show_numbers)}: {row.status}")
        click.echo(f"  key          {row.key}")
        click.echo(f"  attempts     {row.attempts}   next attempt {_when(row.next_attempt_at)} UTC")
        click.echo(f"  created      {_when(row.created_at)} UTC   sent {_when(row.sent_at)} UTC")
        if row.claimed_by:
            click.echo(f"  claimed by   {row.claimed_by} until {_when(row.lease_until)} UTC")
        click.echo(f"  provider id  {row.provider_id or '-'}")
        if row.delivery_status:
            click.echo(f"  delivery     {row.delivery_status} ({_when(row.delivery_updated_at)} UTC)")
        click.echo(f"  last error   {row.last_error or '-'}")
        click.echo("  payload      " + json.dumps(_payload(row.payload, show_numbers), ensure_ascii=False, indent=2)
                   .replace("\n", "\n               "))

    @outbox_group.command("retry")
    @click.argument("row_ids", type=int, nargs=-1)
    @click.option("--all-dead", is_flag=True, help="Every dead row.")
    @url_option
    def retry(row_ids: tuple[int, ...], all_dead: bool, url: str | None) -> None:
        """Dead rows back to pending, with a fresh count of attempts."""
        from sqlalchemy.orm import Session

        from ivr.store import outbox as store

        if not row_ids and not all_dead:
            raise click.UsageError("give row ids, or --all-dead")
        engine, wake = _open(url)
        with Session(engine) as s:
            count = store.retry(s, ids=None if all_dead else row_ids)
            s.commit()
        if count and wake is not None:
            wake(None)
        click.echo(f"{count} row(s) back to pending" + ("" if wake or not count else
                                                        "; a worker's sweep sends them within a minute"))
