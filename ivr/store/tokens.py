"""Named API tokens with scopes, stored only as SHA-256 hashes.

A token is shown once, when it is made (``ivr api tokens add``); the database keeps its hash,
so a copy of the database does not open the API. Tokens are 256-bit random strings, so a plain
SHA-256 is enough (password hashing exists to slow down guessing of low-entropy secrets).
"""
from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime

from sqlalchemy import Integer, String, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from ivr.store import write
from ivr.store.models import Base, UTCDateTime, utcnow

#: Read call records (numbers masked).
SCOPE_CALLS = "calls:read"
#: Read callers' full numbers in those records.
SCOPE_NUMBERS = "numbers:read"
#: Create service requests through Open311 (POST /open311/v2/requests): `ivr open311 keys add`.
SCOPE_OPEN311 = "open311:post"
SCOPES = (SCOPE_CALLS, SCOPE_NUMBERS, SCOPE_OPEN311)
PREFIX = "ivr_"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ApiToken(Base):
    """A named bearer token for /api/*."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[str] = mapped_column(String(255))        # space-separated, from SCOPES
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    @property
    def scope_set(self) -> frozenset[str]:
        return frozenset(self.scopes.split())


# Writes are Core statements in the session's transaction (ivr.store.write).
_TOKENS = ApiToken.__table__


class TokenError(ValueError):
    """A token cannot be made or changed as asked (the message says why)."""


def hash_token(token: str) -> str:
    """What is stored for `token`."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_scopes(scopes: list[str] | tuple[str, ...]) -> list[str]:
    """The scopes in canonical order; TokenError for unknown or none."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise TokenError(f"unknown scope(s) {', '.join(unknown)}; choose from {', '.join(SCOPES)}")
    chosen = [scope for scope in SCOPES if scope in scopes]
    if not chosen:
        raise TokenError(f"a token needs at least one scope ({', '.join(SCOPES)})")
    if SCOPE_NUMBERS in chosen and SCOPE_CALLS not in chosen:
        raise TokenError(f"{SCOPE_NUMBERS} only widens {SCOPE_CALLS}; give both")
    return chosen


def add(s: Session, name: str, scopes: list[str] | tuple[str, ...]) -> str:
    """Create token `name` with `scopes`; returns the token itself (shown once). Caller commits."""
    if not _NAME.fullmatch(name or ""):
        raise TokenError("token name: 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit")
    if s.scalars(select(ApiToken).where(ApiToken.name == name)).first() is not None:
        raise TokenError(f"a token named {name!r} already exists (revoke it or choose another name)")
    token = PREFIX + secrets.token_urlsafe(32)
    write.connection(s).execute(_TOKENS.insert().inline(), {
        "name": name, "token_hash": hash_token(token), "scopes": " ".join(check_scopes(scopes)),
        "created_at": utcnow()})
    return token


def find(s: Session, token: str) -> ApiToken | None:
    """The live (not revoked) token matching `token`, or None.

    Looked up by hash: the comparison is on a digest of the secret, so its timing says
    nothing about the token itself.
    """
    if not token:
        return None
    found = s.scalars(select(ApiToken).where(ApiToken.token_hash == hash_token(token))).first()
    return found if found is not None and found.revoked_at is None else None


def listing(s: Session) -> list[ApiToken]:
    """Every token, revoked ones included, oldest first."""
    return list(s.scalars(select(ApiToken).order_by(ApiToken.created_at, ApiToken.id)))


def revoke(s: Session, name: str) -> None:
    """Revoke token `name` (kept, for the audit log's sake). Caller commits."""
    found = s.scalars(select(ApiToken).where(ApiToken.name == name)).first()
    if found is None:
        raise TokenError(f"no token named {name!r}")
    if found.revoked_at is None:
        write.connection(s).execute(update(_TOKENS).where(_TOKENS.c.id == found.id).values(revoked_at=utcnow()))


def touch(s: Session, token_id: int) -> None:
    """Record that token `token_id` was just used. Caller commits (with the use's audit entry)."""
    write.connection(s).execute(update(_TOKENS).where(_TOKENS.c.id == token_id).values(last_used_at=utcnow()))
