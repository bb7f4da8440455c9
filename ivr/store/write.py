"""The store's one write path: a write is a SQLAlchemy Core statement on the request session's
connection, in its transaction. Nothing in the store commits; the webhook (or CLI command) does,
once, so a request's effects and its stored answer become durable together.

Why Core and not the ORM's unit of work: webhooks write a handful of known rows and read nothing
back; Core skips the identity map and flush (measured ~1 ms less CPU per webhook on SQLite), and
one path means one set of rules for locking (SQLite's write turn is taken at the first write,
ivr.store.sqlite) and batching (ivr.store.pipeline). ORM models stay as the table definitions
and for reads that want objects.
"""
from __future__ import annotations

from sqlalchemy import Connection
from sqlalchemy.orm import Session

#: `Session.info` key: this transaction wrote something (teardown warns when it was not committed).
WROTE = "wrote"


def connection(s: Session) -> Connection:
    """The session's connection, for a write in its transaction (flagged as written)."""
    s.info[WROTE] = True
    return s.connection()
