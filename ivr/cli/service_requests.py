"""`ivr requests list|show|ack|close` — the service requests citizens made, and their status.

Contacts are masked unless `--show-numbers` is given (the output is easily pasted into tickets).
`ack` and `close` record who did it (`--by`, default the login name) and the note; the note of
the latest change is what Open311 clients see as `status_notes`. A citizen who agreed to texts is
sent one (through the outbox) unless `--no-text` is given.
"""
from __future__ import annotations

import getpass
import json
from typing import Any

import click

from ivr.cli.db import session
from ivr.config import from_environment
from ivr.routing.load import load_rules
from ivr.routing.services import STATUSES, ServiceRequest, StatusChange
from ivr.store.privacy import mask_email, mask_number

# A command imports the store, the app and the job queue when it runs, not here: see ivr/cli/__init__.py.


def _when(value: Any) -> str:
    return value.isoformat(timespec="seconds") if value is not None else ""


def _document(request: ServiceRequest, show: bool) -> dict[str, Any]:
    document = {name: getattr(request, name) for name in ServiceRequest.__dataclass_fields__}
    document["created_at"], document["updated_at"] = _when(request.created_at), _when(request.updated_at)
    if not show:
        document["contact_phone"] = mask_number(request.contact_phone) or None
        document["contact_email"] = mask_email(request.contact_email) or None
    return document


def _line(request: ServiceRequest, show: bool) -> str:
    document = _document(request, show)
    where = request.address or (f"{request.lat:.5f},{request.long:.5f}" if request.lat is not None
                                and request.long is not None else "")
    return (f"{document['created_at'][:16]}  {request.case_number}  {request.status:12} {request.channel:7} "
            f"{request.service_code:22} {request.department:12} {document['contact_phone'] or '-':>14}  "
            f"{where[:40]}")


def _story(request: ServiceRequest, changes: list[StatusChange], show: bool) -> list[str]:
    document = _document(request, show)
    lines = [f"case {request.case_number}: {request.service_name} ({request.service_code}) for {request.department}",
             f"  status      {request.status}" + (f" — {request.status_notes}" if request.status_notes else ""),
             f"  made        {document['created_at']} by {request.channel} ({request.language})"
             + (f", call {request.call_sid}" if request.call_sid else ""),
             f"  updated     {document['updated_at']}",
             f"  description {request.description or '—'}",
             f"  address     {request.address or '—'}"
             + (f"  ({request.lat}, {request.long})" if request.lat is not None else ""),
             f"  contact     {document['contact_phone'] or '—'}  {document['contact_email'] or ''}".rstrip()
             + ("  (may be texted)" if request.text_consent else "")]
    if request.media_url:
        lines.append(f"  media       {request.media_url}")
    lines.append("  history:")
    for change in changes:
        lines.append(f"    {_when(change.at)}  {change.status:12} {change.by:16} {change.note}".rstrip())
    return lines


def register(cli: click.Group) -> None:
    """Add the `requests` command group to `cli`."""
    url_option = click.option("--url", envvar="IVR_DATABASE_URL", help="Database URL (default: the app's).")
    show_option = click.option("--show-numbers", is_flag=True, help="Show contacts in full (default: masked).")

    @cli.group("requests")
    def requests_group() -> None:
        """Service requests made by phone, text or Open311: list, read, acknowledge, close."""

    @requests_group.command("list")
    @click.option("--status", type=click.Choice(STATUSES), multiple=True, help="Only these statuses (repeatable).")
    @click.option("--service", "service_code", multiple=True, help="Only this service code (repeatable).")
    @click.option("--department", multiple=True, help="Only this department id (repeatable).")
    @click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100000))
    @click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
    @show_option
    @url_option
    def listing(status: tuple[str, ...], service_code: tuple[str, ...], department: tuple[str, ...], limit: int,
                as_json: bool, show_numbers: bool, url: str | None) -> None:
        """The newest requests first."""
        from ivr.store import service_requests

        with session(url) as s:
            found = service_requests.search(s, status=status or None, service_code=service_code or None,
                                            department=department or None, limit=limit)
        if not found and not as_json:
            click.echo("no service requests")
        for request in found:
            click.echo(json.dumps(_document(request, show_numbers), ensure_ascii=False) if as_json
                       else _line(request, show_numbers))

    @requests_group.command("show")
    @click.argument("case")
    @click.option("--json", "as_json", is_flag=True, help="The request and its history as JSON.")
    @show_option
    @url_option
    def show(case: str, as_json: bool, show_numbers: bool, url: str | None) -> None:
        """One request (CASE: its case number) and its history."""
        from ivr.store import service_requests

        with session(url) as s:
            request = service_requests.by_case(s, case)
            changes = service_requests.history(s, case) if request else []
        if request is None:
            raise click.ClickException(f"no service request {case!r} (check the digits: the last is a check digit)")
        if as_json:
            document = _document(request, show_numbers)
            document["history"] = [{"status": c.status, "note": c.note, "by": c.by, "at": _when(c.at)}
                                   for c in changes]
            click.echo(json.dumps(document, ensure_ascii=False, indent=2))
            return
        for line in _story(request, changes, show_numbers):
            click.echo(line)

    def _change(case: str, status: str, note: str, by: str | None, url: str | None, text: bool = True) -> None:
        from ivr.service_updates import tell_citizen
        from ivr.store import service_requests

        author = by or f"cli:{getpass.getuser()}"
        settings = from_environment()
        with session(url) as s:
            try:
                request = service_requests.set_status(s, case, status, note, author)
            except service_requests.RequestError as exc:
                raise click.ClickException(str(exc)) from None
            texted = text and tell_citizen(s, request, load_rules(settings["IVR_RULES_PATH"]),
                                           settings["IVR_PROMPTS_DIR"])
            s.commit()
        click.echo(f"case {request.case_number}: {request.status}" + (f" — {note}" if note else "")
                   + ("; the citizen is sent a text" if texted else ""))

    note_option = click.option("--note", default="", help="What was done or will be (the public status notes).")
    by_option = click.option("--by", default=None, help="Who (default: cli:<login name>).")
    text_option = click.option("--text/--no-text", default=True, show_default=True,
                               help="Text the citizen about it, if they agreed to texts.")

    @requests_group.command("ack")
    @click.argument("case")
    @note_option
    @by_option
    @text_option
    @url_option
    def ack(case: str, note: str, by: str | None, text: bool, url: str | None) -> None:
        """Acknowledge request CASE: someone has it."""
        _change(case, "acknowledged", note, by, url, text)

    @requests_group.command("close")
    @click.argument("case")
    @note_option
    @by_option
    @text_option
    @url_option
    def close(case: str, note: str, by: str | None, text: bool, url: str | None) -> None:
        """Close request CASE (say what was done with --note)."""
        _change(case, "closed", note, by, url, text)

    @requests_group.command("reopen")
    @click.argument("case")
    @note_option
    @by_option
    @url_option
    def reopen(case: str, note: str, by: str | None, url: str | None) -> None:
        """Open request CASE again."""
        _change(case, "open", note, by, url)
