"""What the outbox tests share: an app with only the store, a session on it, the outbox's rows, and
every waiting row made due (backoff is seconds to minutes; the tests do not wait for it)."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from conftest import store_only_app
from ivr.store import db
from ivr.store import outbox as store
from ivr.store.models import utcnow


def outbox_app(db_url: str, name: str):
    app = store_only_app(db_url, name)
    if not db.is_memory_sqlite(db_url):
        db.upgrade(db.engine(app))
    return app


def outbox_session(app) -> Session:
    return Session(db.engine(app), expire_on_commit=False)


def outbox_rows(app) -> list[store.OutboxMessage]:
    with outbox_session(app) as s:
        return sorted(store.search(s, limit=10_000), key=lambda r: r.id)


def make_due(app) -> None:
    with outbox_session(app) as s:
        s.execute(update(store.OutboxMessage).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
        s.commit()
