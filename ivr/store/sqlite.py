"""SQLite as the store of several worker processes (the embedded default): no "database is locked".

- `WriteTurn`: a transaction that writes first takes the *write turn*, then opens with
  ``BEGIN IMMEDIATE``. The turn is one lock per process (threads wait on it without polling)
  in front of an exclusive ``flock`` on ``<database>-writer.lock`` (processes wait on it in the
  kernel, which wakes the next waiter when the holder lets go). Neither wait is endless: after
  `wait_s` in all a writer goes ahead without the turn and SQLite's busy timeout takes over, so a
  request stuck in one worker cannot hang the others for ever (`FileTurn`). Reads before the first write run
  outside any transaction, each on the latest commit, so no transaction ever upgrades a stale
  read snapshot to a write (SQLite answers that with SQLITE_BUSY at once, without waiting).
- `Checkpointer`: the WAL checkpoint (copying the log into the database, with an fsync) runs
  after a response has been sent, at most once a second per process, instead of inside the
  commit of whichever webhook crossed SQLite's 1,000-page threshold.

Why a turn and not only ``BEGIN IMMEDIATE`` with a busy timeout: SQLite's busy handler polls,
sleeping 1, 2, 5, 10 … up to 100 ms between tries, and the lock goes to whoever polls at the
right moment. A writer that has waited a while polls every 100 ms; newcomers poll every 1-5 ms
and win. Measured (bench/sqlite_writers.py, 2 processes × 32 threads, write transactions held
0-20 ms as on a loaded machine): writers starved past the 5 s busy timeout, "database is
locked" on 84 of 234 webhooks, some waiting 22 s. With the turn: none (see docs/operations.md).
The busy timeout stays for writers outside the turn (the sqlite3 shell, another program).
"""
from __future__ import annotations

import fcntl
import logging
import os
import re
import threading
import time
import weakref
from typing import IO, Any

from flask import Response
from sqlalchemy import Engine, event
from sqlalchemy.exc import SQLAlchemyError

from ivr import metrics
from ivr.fifo import FifoSemaphore

log = logging.getLogger(__name__)

#: SQLite checkpoints by itself only when the WAL passes this many pages (~40 MB): a safety
#: net, since `Checkpointer` normally keeps the WAL to a few hundred pages.
AUTOCHECKPOINT_PAGES = 10_000
CHECKPOINT_EVERY_S = 1.0


#: A statement that writes rows (DDL keeps the driver's own handling: migrations run alone).
_WRITE = re.compile(r"\s*(INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)


class FileTurn:
    """The exclusive ``flock`` on the writer lock file, waited for at most a given time.

    A blocking ``flock`` cannot be given a timeout, and polling with ``LOCK_NB`` would bring back
    the unfair race this lock exists to avoid; so an uncontended lock is taken at once, and a
    contended one is waited for in the kernel by one helper thread per process, while the taker
    waits for it with a timeout. A taker that gives up leaves the helper's wait in place: the next
    taker adopts it, and if nobody is waiting when the kernel grants it, it is let go at once.
    Only the holder of the process's turn (`WriteTurn.local`) calls `take`, so there is one taker at a time.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.file: IO[bytes] | None = None
        self._cond = threading.Condition()
        self._asked = False      # the helper is to wait for the lock (or is waiting)
        self._granted = False    # the helper got it and nobody has taken it over yet
        self._waiting = 0        # takers waiting for the helper right now
        self._helper: threading.Thread | None = None

    def take(self, wait_s: float) -> bool:
        """The lock, within `wait_s` seconds; False when another process kept it that long."""
        with self._cond:
            if self.file is None:
                self.file = open(self.path, "ab")   # noqa: SIM115 - kept open for the process's life
            if not self._asked:
                try:
                    fcntl.flock(self.file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return True
                except BlockingIOError:
                    self._asked = True
                    if self._helper is None:
                        self._helper = threading.Thread(target=self._wait_in_kernel, name="sqlite-write-turn",
                                                        daemon=True)
                        self._helper.start()
                    self._cond.notify_all()
            self._waiting += 1
            try:
                if not self._cond.wait_for(lambda: self._granted, timeout=wait_s):
                    return False
            finally:
                self._waiting -= 1
            self._granted = False
            return True

    def give(self) -> None:
        if self.file is not None:
            fcntl.flock(self.file.fileno(), fcntl.LOCK_UN)

    def _wait_in_kernel(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._asked and not self._granted)
                file = self.file
            assert file is not None
            try:
                fcntl.flock(file.fileno(), fcntl.LOCK_EX)   # blocks in the kernel, GIL released
            except OSError as exc:   # not expected; the takers' timeout and the busy timeout remain
                log.error("waiting for the SQLite writer lock failed: %s", exc)
                with self._cond:
                    self._asked = False   # the next taker tries again
                continue
            with self._cond:
                self._asked = False
                if self._waiting:
                    self._granted = True
                    self._cond.notify_all()
                else:   # every taker gave up meanwhile: let the next process go
                    fcntl.flock(file.fileno(), fcntl.LOCK_UN)


class WriteTurn:
    """Engine events giving SQLite's write lock to one transaction at a time, in turn, across
    threads and processes (see module docstring).

    Within a process the turn goes to writers in the order they asked (`FifoSemaphore`); across
    processes, through the kernel's ``flock`` (`FileTurn`). The turn is taken before a
    transaction's first write and given back when its connection returns to the pool (the
    transaction is over: committed, rolled back or invalidated). A writer that waits longer than
    `wait_s` in all (its process's turn, then the other processes') goes ahead without the turn,
    with a warning, and leaves the wait to SQLite's busy timeout: only a stuck request, here or in
    another worker, makes it so long, and nobody waits for it forever.
    """

    KEY = "ivr.sqlite_write_turn"   # in the pool entry's record_info, which survives invalidation

    def __init__(self, database: str, wait_s: float) -> None:
        self.path = f"{database}-writer.lock"
        self.wait_s = wait_s
        self._reset()
        # A forked child must not inherit the parent's lock state or its open file: a flock
        # belongs to the open file, which parent and child would share.
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: (turn := ref()) and turn._reset())

    def _reset(self) -> None:
        self.local = FifoSemaphore(1)
        self.file_turn = FileTurn(self.path)

    def take(self) -> bool:
        """Wait for the turn: this process's lock, then the file lock. False: went ahead without.
        The wait is counted (ivr_sqlite_write_turn_wait_seconds), however it ended."""
        started = time.monotonic()
        try:
            taken = self._take(started + self.wait_s)
        finally:
            metrics.SQLITE_TURN_WAIT_SECONDS.observe(time.monotonic() - started)
        if not taken:
            metrics.SQLITE_TURN_GAVE_UP.inc()
        return taken

    def _take(self, deadline: float) -> bool:
        if not self.local.acquire(timeout=self.wait_s):
            log.warning("an SQLite writer waited %.0f s for its turn; going ahead (is a request stuck?)",
                        self.wait_s)
            return False
        try:
            if self.file_turn.take(max(0.0, deadline - time.monotonic())):
                return True
        except BaseException:
            self.local.release()
            raise
        # Another process kept the lock all this time: this process's next writer waits for it
        # afresh (adopting the same wait), and this one leaves it to SQLite's busy timeout.
        self.local.release()
        log.warning("an SQLite writer waited %.0f s for another worker's turn; going ahead (is a request "
                    "stuck in another process?)", self.wait_s)
        return False

    def give(self) -> None:
        """Let the next writer (of any process) go."""
        try:
            self.file_turn.give()
        finally:
            self.local.release()

    def install(self, engine: Engine) -> None:
        """Take the turn before each transaction's first write on `engine`'s connections and
        give it back when they return to the pool.

        The turn is taken in the dialect's ``do_execute`` events (which leave the execution
        itself to the dialect), not in ``before_cursor_execute``: a connection event listener
        makes SQLAlchemy dispatch every connection event (before/after execute, cursor execute,
        begin, commit …) for every statement, ~30 us per webhook transaction (measured, 1 read
        + 3 writes + commit: 186 -> 156 us); dialect events cost only where they are listened for.
        """
        event.listen(engine, "do_execute", self.do_execute)
        event.listen(engine, "do_executemany", self.do_execute)
        event.listen(engine, "do_execute_no_params", self.do_execute_no_params)
        event.listen(engine.pool, "checkin", self.checkin)

    def do_execute(self, cursor: Any, statement: str, _parameters: Any, context: Any) -> bool:
        """`do_execute`/`do_executemany` listener: `before_write`; the dialect executes (False)."""
        self.before_write(cursor, statement, context)
        return False

    def do_execute_no_params(self, cursor: Any, statement: str, context: Any) -> bool:
        """`do_execute_no_params` listener: `before_write`; the dialect executes (False)."""
        self.before_write(cursor, statement, context)
        return False

    def before_write(self, cursor: Any, statement: str, context: Any) -> None:
        """Before a transaction's first write, take the turn and ``BEGIN IMMEDIATE`` (the driver
        is in autocommit mode: see `autocommit_on_connect`)."""
        if cursor.connection.in_transaction or not _WRITE.match(statement):
            return
        # Only a default's pre-execution comes without a context, and that is a SELECT.
        self.before_driver_write(cursor.connection, statement, context.root_connection.connection.record_info)

    def before_driver_write(self, dbapi_conn: Any, statement: str, record_info: dict[str, Any]) -> None:
        """`before_write` for a statement run on the driver's cursor (`ivr.store.direct`):
        `record_info` is the pool entry's, where the turn is noted until checkin gives it back."""
        if dbapi_conn.in_transaction or not _WRITE.match(statement):
            return
        if self.KEY not in record_info and self.take():
            record_info[self.KEY] = time.monotonic()   # when the turn was taken: checkin counts how long it was held
        dbapi_conn.execute("BEGIN IMMEDIATE")

    def checkin(self, _dbapi_conn: Any, record: Any) -> None:
        """Pool `checkin` listener: the connection's transaction is over, give the turn back."""
        taken = record.record_info.pop(self.KEY, None)
        if taken is not None:
            self.give()
            metrics.SQLITE_TURN_HELD_SECONDS.observe(time.monotonic() - taken)


def autocommit_on_connect(dbapi_conn: Any) -> None:
    """Leave transactions to `WriteTurn`: the driver's own implicit ``BEGIN`` is DEFERRED, which
    takes the write lock only at the first write and fails at once when another process wrote
    since this transaction's first read."""
    dbapi_conn.isolation_level = None


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
