"""`ivr open311 keys add|list|revoke` — who may create service requests through Open311.

An Open311 api_key is a named API token (ivr.store.tokens) with the `open311:post` scope: stored
as a SHA-256 hash, shown once, revocable, its last use recorded. Reads of Open311 need no key.
"""
from __future__ import annotations

import click

from ivr.cli.db import session
from ivr.store import audit, tokens


def _when(value: object) -> str:
    return value.isoformat(timespec="seconds") if value is not None else "never"  # type: ignore[attr-defined]


def register(cli: click.Group) -> None:
    """Add the `open311` command group to `cli`."""
    url_option = click.option("--url", envvar="IVR_DATABASE_URL", help="Database URL (default: the app's).")

    @cli.group("open311")
    def open311_group() -> None:
        """The Open311 GeoReport v2 endpoint at /open311/v2 (docs/open311.md)."""

    @open311_group.group("keys")
    def keys_group() -> None:
        """api_keys for POST requests (stored hashed)."""

    @keys_group.command("add")
    @click.argument("name")
    @url_option
    def add(name: str, url: str | None) -> None:
        """Make key NAME (e.g. the CRM or app that will post) and print it, only this once."""
        with session(url) as s:
            try:
                key = tokens.add(s, name, [tokens.SCOPE_OPEN311])
            except tokens.TokenError as exc:
                raise click.ClickException(str(exc)) from None
            audit.record(s, "cli", "open311.keys.add", name)
            s.commit()
        click.echo(key)
        click.echo(f"Open311 key {name!r}: it is shown only now; the client sends it as api_key=… "
                   "with POST /open311/v2/requests", err=True)

    @keys_group.command("list")
    @url_option
    def listing(url: str | None) -> None:
        """Every Open311 key: name, made, last used, revoked."""
        with session(url) as s:
            found = [t for t in tokens.listing(s) if tokens.SCOPE_OPEN311 in t.scope_set]
        if not found:
            click.echo("no Open311 keys (make one with `ivr open311 keys add NAME`)")
        for key in found:
            state = f"revoked {_when(key.revoked_at)}" if key.revoked_at else "active"
            click.echo(f"{key.name:24} made {_when(key.created_at)}  last used {_when(key.last_used_at)}  {state}")

    @keys_group.command("revoke")
    @click.argument("name")
    @url_option
    def revoke(name: str, url: str | None) -> None:
        """Revoke key NAME at once (kept in the list, for the audit log's sake)."""
        with session(url) as s:
            found = next((t for t in tokens.listing(s) if t.name == name), None)
            if found is None or tokens.SCOPE_OPEN311 not in found.scope_set:
                raise click.ClickException(f"no Open311 key named {name!r} (`ivr open311 keys list`)")
            tokens.revoke(s, name)
            audit.record(s, "cli", "open311.keys.revoke", name)
            s.commit()
        click.echo(f"Open311 key {name!r} revoked")
