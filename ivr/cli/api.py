"""`ivr api tokens add|list|revoke` and `ivr api audit` — who may read the JSON API, and who did.

A token is printed once, when it is made; the database keeps only its hash.
"""
from __future__ import annotations

import json

import click

from ivr.cli.db import session
from ivr.store import audit, tokens
from ivr.store.tokens import SCOPE_CALLS, SCOPES


def _when(value: object) -> str:
    return value.isoformat(timespec="seconds") if value is not None else "never"  # type: ignore[attr-defined]


def register(cli: click.Group) -> None:
    """Add the `api` command group to `cli`."""
    url_option = click.option("--url", envvar="IVR_DATABASE_URL", help="Database URL (default: the app's).")

    @cli.group("api")
    def api_group() -> None:
        """The JSON API (/api/calls): tokens and the audit log of reads."""

    @api_group.group("tokens")
    def tokens_group() -> None:
        """Named API tokens, stored hashed, with scopes."""

    @tokens_group.command("add")
    @click.argument("name")
    @click.option("--scope", "scopes", multiple=True, type=click.Choice(SCOPES), default=(SCOPE_CALLS,),
                  show_default=True, help="What the token may read (repeat for several).")
    @url_option
    def add(name: str, scopes: tuple[str, ...], url: str | None) -> None:
        """Make token NAME and print it (only this once)."""
        with session(url) as s:
            try:
                token = tokens.add(s, name, list(scopes))
            except tokens.TokenError as exc:
                raise click.ClickException(str(exc)) from None
            audit.record(s, "cli", "api.tokens.add", name, {"scopes": sorted(set(scopes))})
            s.commit()
        click.echo(token)
        click.echo(f"token {name!r} ({' '.join(tokens.check_scopes(list(scopes)))}); it is shown only now: "
                   f"send it as 'Authorization: Bearer <token>'", err=True)

    @tokens_group.command("list")
    @url_option
    def listing(url: str | None) -> None:
        """Every token: name, scopes, made, last used, revoked."""
        with session(url) as s:
            found = tokens.listing(s)
        if not found:
            click.echo("no API tokens (make one with `ivr api tokens add NAME`)")
        for token in found:
            state = f"revoked {_when(token.revoked_at)}" if token.revoked_at else "active"
            click.echo(f"{token.name:24} {token.scopes:26} made {_when(token.created_at)}  "
                       f"last used {_when(token.last_used_at)}  {state}")

    @tokens_group.command("revoke")
    @click.argument("name")
    @url_option
    def revoke(name: str, url: str | None) -> None:
        """Revoke token NAME at once (kept in the list, for the audit log's sake)."""
        with session(url) as s:
            try:
                tokens.revoke(s, name)
            except tokens.TokenError as exc:
                raise click.ClickException(str(exc)) from None
            audit.record(s, "cli", "api.tokens.revoke", name)
            s.commit()
        click.echo(f"token {name!r} revoked")

    @api_group.command("audit")
    @click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10000))
    @click.option("--actor", help="Only this actor (e.g. token:reports, env:IVR_API_TOKEN).")
    @click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
    @url_option
    def audit_log(limit: int, actor: str | None, as_json: bool, url: str | None) -> None:
        """The newest audit entries: who read or changed what, and when."""
        with session(url) as s:
            entries = audit.recent(s, limit, actor=actor)
        for entry in entries:
            if as_json:
                click.echo(json.dumps({"at": _when(entry.at), "actor": entry.actor, "action": entry.action,
                                       "target": entry.target, "detail": entry.detail}))
            else:
                click.echo(f"{_when(entry.at)}  {entry.actor:24} {entry.action:18} {entry.target}")
