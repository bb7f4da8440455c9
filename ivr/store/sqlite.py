"""Keeping SQLite's slow moments off the webhook's response time (the embedded default store).

- `WriterQueue`: writers of one process take turns on a lock that wakes the next at once,
  instead of colliding in SQLite, whose busy handler sleeps 1, 2, 5, 10 … ms between tries.
- `Checkpointer`: the WAL checkpoint (copying the log into the database, with an fsync) runs
  after a response has been sent, at most once a second per process, instead of inside the
  commit of whichever webhook crossed SQLite's 1,000-page threshold.
Both are optimisations only: if they do not run, SQLite's own locking and checkpoints still do.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

from flask import Response
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)

#: SQLite checkpoints by itself only when the WAL passes this many pages (~40 MB): a safety
#: net, since `Checkpointer` normally keeps the WAL to a few hundred pages.
AUTOCHECKPOINT_PAGES = 10_000
CHECKPOINT_EVERY_S = 1.0


class WriterQueue:
    """Engine events making this process's writers wait for their turn (see module docstring).

    The turn is taken at a connection's first INSERT/UPDATE/DELETE and given back when the
    connection returns to the pool (its transaction is over: committed, rolled back or
    invalidated). A writer that waits longer than `timeout_s` goes ahead and leaves it to SQLite.
    """

    KEY = "ivr.sqlite_writer_turn"

    def __init__(self, timeout_s: float) -> None:
        self.lock = threading.Lock()
        self.timeout_s = timeout_s

    def before_execute(self, conn: Any, _cursor: Any, _statement: str, _params: Any, context: Any,
                       _many: bool) -> None:
        """`before_cursor_execute` listener: take the turn before the transaction's first write."""
        if context is None or not (context.isinsert or context.isupdate or context.isdelete):
            return
        info = conn.connection.record_info   # survives invalidation, unlike .info
        if info.get(self.KEY):
            return   # this connection's transaction already has the turn
        if self.lock.acquire(timeout=self.timeout_s):
            info[self.KEY] = True
        else:
            log.warning("an SQLite writer waited %.1f s for its turn; going ahead (is a request stuck?)",
                        self.timeout_s)

    def checkin(self, _dbapi_conn: Any, record: Any) -> None:
        """Pool `checkin` listener: the connection's transaction is over, give the turn back."""
        if record.record_info.pop(self.KEY, False):
            self.lock.release()


class Checkpointer:
    """`after_request` hook running a PASSIVE WAL checkpoint once the response has been sent."""

    def __init__(self, engine: Engine, every_s: float = CHECKPOINT_EVERY_S) -> None:
        self.engine = engine
        self.every_s = every_s
        self.due = time.monotonic() + every_s

    def after_request(self, response: Response) -> Response:
        """Schedule a checkpoint after this response when one is due (races only add one)."""
        now = time.monotonic()
        if now >= self.due:
            self.due = now + self.every_s
            response.call_on_close(self.checkpoint)
        return response

    def checkpoint(self) -> None:
        """Copy the WAL into the database without blocking readers or writers (PASSIVE)."""
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        except SQLAlchemyError as exc:   # the next one will try again; SQLite's net remains
            log.warning("SQLite checkpoint failed: %s", str(exc).splitlines()[0])
