"""Who is signed in, and what their role lets them see.

Passwords are hashed with Argon2id (argon2-cffi). After MAX_FAILURES wrong passwords in a row an
account is locked for LOCKOUT; an unknown username costs the same hashing time as a known one,
so a login form does not tell which usernames exist.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Flask, Response, abort, request
from flask_login import LoginManager, current_user
from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr import metrics
from ivr.store import audit, console, db
from ivr.store.console import ROLES, User
from ivr.store.models import utcnow

MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
MIN_PASSWORD = 10
_USERNAME = re.compile(r"^[A-Za-z0-9._@-]{2,64}$")
_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("not-a-real-password-only-for-timing")
RANK = {role: rank for rank, role in enumerate(ROLES)}

F = TypeVar("F", bound=Callable[..., Any])


class ConsoleLoginManager(LoginManager):
    """Flask-Login, minus its remember-cookie hook on Twilio's webhooks.

    The hook runs after every request of the app and reads the session to see whether a sign-in
    or sign-out asked for the remember cookie to be set or cleared; only console pages sign in or
    out, and Twilio sends no cookies. Reading the session also added `Vary: Cookie` to every
    webhook's answer. Skipped there: 18 us of each webhook."""

    def _update_remember_cookie(self, response: Response) -> Response:
        if request.path.startswith(metrics.WEBHOOK_PREFIXES):
            return response
        return super()._update_remember_cookie(response)  # type: ignore[no-any-return]


login_manager = ConsoleLoginManager()


@dataclass(frozen=True)
class ConsoleUser:
    """The signed-in user as the pages see it (a plain copy, never a live ORM row)."""
    id: int
    username: str
    role: str
    line: str
    is_authenticated: bool = True
    is_active: bool = True
    is_anonymous: bool = False

    def get_id(self) -> str:
        return str(self.id)

    def can(self, role: str) -> bool:
        """True when this user's role is `role` or above (agent < supervisor < admin)."""
        return RANK[self.role] >= RANK[role]


def _as_console_user(user: User) -> ConsoleUser:
    return ConsoleUser(user.id, user.username, user.role, user.line)


@login_manager.user_loader
def _load(user_id: str) -> ConsoleUser | None:
    if not user_id.isdigit():
        return None
    user = db.session().get(User, int(user_id))
    if user is None or user.disabled:
        return None   # disabling an account ends its sessions at the next request
    return _as_console_user(user)


def init_app(app: Flask) -> None:
    login_manager.login_view = "console.login"
    login_manager.login_message = "Sign in to use the console."
    login_manager.session_protection = "strong"
    login_manager.init_app(app)


def requires(role: str) -> Callable[[F], F]:
    """View decorator: signed in, and at least `role` (403 otherwise). Checked on the server."""
    if role not in RANK:
        raise ValueError(f"unknown role {role!r}")

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if not current_user.can(role):
                abort(403)
            return view(*args, **kwargs)
        return wrapper  # type: ignore[return-value]
    return decorate


# --- accounts (used by `ivr users` and the login view) --------------------------------------------
class AccountError(ValueError):
    """A request about an account that cannot be done as asked; the message says why."""


def check_username(username: str) -> str:
    if not _USERNAME.match(username or ""):
        raise AccountError("a username is 2-64 letters, digits or . _ @ -")
    return username


def check_password(password: str) -> str:
    if len(password or "") < MIN_PASSWORD:
        raise AccountError(f"a password needs at least {MIN_PASSWORD} characters")
    return password


def find(s: Session, username: str) -> User | None:
    # populate_existing: writes are Core statements (console.update_user), which do not refresh a
    # User the session already holds.
    return s.scalars(select(User).where(User.username == username)
                     .execution_options(populate_existing=True)).first()


def add_user(s: Session, username: str, role: str, password: str, line: str = "") -> None:
    check_username(username)
    if role not in RANK:
        raise AccountError(f"role must be one of {', '.join(ROLES)}")
    check_password(password)
    if find(s, username) is not None:
        raise AccountError(f"user {username!r} already exists")
    console.add_user(s, username=username, role=role, password_hash=_hasher.hash(password), line=line.strip(),
                     disabled=False, failed_logins=0)


def set_password(s: Session, username: str, password: str) -> User:
    user = find(s, username)
    if user is None:
        raise AccountError(f"no user {username!r}")
    check_password(password)
    console.update_user(s, user.id, password_hash=_hasher.hash(password), failed_logins=0, locked_until=None)
    return user


def authenticate(s: Session, username: str, password: str) -> tuple[User | None, str]:
    """(user, "") when the password is right; (None or user, reason) otherwise.

    Counts failures and locks; the caller commits (and audits) either way.
    """
    user = find(s, username)
    if user is None:
        try:
            _hasher.verify(_DUMMY_HASH, password or "-")
        except VerificationError:
            pass
        return None, "unknown user"
    now = utcnow()
    if user.locked_until is not None and user.locked_until > now:
        return user, "locked"
    if user.disabled:
        return user, "disabled"
    try:
        _hasher.verify(user.password_hash, password or "-")
    except (VerificationError, InvalidHashError):
        failures = (user.failed_logins or 0) + 1
        if failures >= MAX_FAILURES:
            console.update_user(s, user.id, locked_until=now + LOCKOUT, failed_logins=0)
            return user, "locked after repeated failures"
        console.update_user(s, user.id, failed_logins=failures)
        return user, "wrong password"
    changes: dict[str, Any] = {"failed_logins": 0, "locked_until": None, "last_login_at": now}
    if _hasher.check_needs_rehash(user.password_hash):
        changes["password_hash"] = _hasher.hash(password)
    console.update_user(s, user.id, **changes)
    return user, ""


def console_user(user: User) -> ConsoleUser:
    return _as_console_user(user)


def audited(s: Session, action: str, target: str = "", *, actor: str | None = None, **detail: Any) -> None:
    """Audit a console action as ``user:NAME`` / ``console.ACTION`` (the caller commits)."""
    who = actor if actor is not None else current_user.username
    audit.record(s, f"user:{who}", f"console.{action}", target, detail)
