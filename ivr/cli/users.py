"""`ivr users add|list|disable|reset-password` — the console's accounts. There is no default user.

Passwords are read from standard input (--password-stdin) so they never appear in the shell's
history or the process list.
"""
from __future__ import annotations

import sys

import click
from sqlalchemy import select

from ivr.cli.db import session
from ivr.store import audit, console
from ivr.store.console import ROLES, User

# A command imports the store, the app and the job queue when it runs, not here: see ivr/cli/__init__.py.


def _read_password() -> str:
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise click.UsageError("no password on standard input (echo … | ivr users add NAME --role agent --password-stdin)")
    return password


def register(cli: click.Group) -> None:
    """Add the `users` group to `cli`."""

    @cli.group("users")
    def users() -> None:
        """Console users (agents, supervisors, admins)."""

    def _with_session(action):  # type: ignore[no-untyped-def]
        # Only the store: building the whole app would load the speech models for nothing.
        from ivr.web.console.auth import AccountError

        with session() as s:
            try:
                result = action(s)
                s.commit()
                return result
            except AccountError as exc:
                s.rollback()
                raise click.ClickException(str(exc)) from None

    @users.command("add")
    @click.argument("username")
    @click.option("--role", type=click.Choice(ROLES), required=True)
    @click.option("--password-stdin", is_flag=True, required=True, help="Read the password from standard input.")
    @click.option("--line", default="", help="The user's phone line (E.164 or sip:), for screen pops and call-backs.")
    def add(username: str, role: str, password_stdin: bool, line: str) -> None:
        """Create USERNAME with ROLE."""
        from ivr.web.console import auth

        password = _read_password()

        def action(s):  # type: ignore[no-untyped-def]
            auth.add_user(s, username, role, password, line)
            audit.record(s, "cli", "console.user.add", username, {"role": role})

        _with_session(action)
        click.echo(f"added {username} ({role})")

    @users.command("list")
    def list_() -> None:
        """Every user: name, role, line, state."""
        def action(s):  # type: ignore[no-untyped-def]
            return [(u.username, u.role, u.line, "disabled" if u.disabled else "active")
                    for u in s.scalars(select(User).order_by(User.username))]

        for username, role, line, state in _with_session(action):
            click.echo(f"{username}\t{role}\t{line or '-'}\t{state}")

    @users.command("disable")
    @click.argument("username")
    def disable(username: str) -> None:
        """Stop USERNAME from signing in (their open sessions end at the next request)."""
        from ivr.web.console import auth

        def action(s):  # type: ignore[no-untyped-def]
            user = auth.find(s, username)
            if user is None:
                raise auth.AccountError(f"no user {username!r}")
            console.update_user(s, user.id, disabled=True)
            audit.record(s, "cli", "console.user.disable", username)

        _with_session(action)
        click.echo(f"disabled {username}")

    @users.command("reset-password")
    @click.argument("username")
    @click.option("--password-stdin", is_flag=True, required=True, help="Read the new password from standard input.")
    def reset_password(username: str, password_stdin: bool) -> None:
        """Give USERNAME a new password (also lifts a lockout and re-enables the account)."""
        from ivr.web.console import auth

        password = _read_password()

        def action(s):  # type: ignore[no-untyped-def]
            user = auth.set_password(s, username, password)
            console.update_user(s, user.id, disabled=False)
            audit.record(s, "cli", "console.user.reset-password", username)

        _with_session(action)
        click.echo(f"new password set for {username}")
