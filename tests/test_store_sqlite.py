"""SQLite with several writers: writers take turns (ivr.store.sqlite.WriteTurn) instead of polling
SQLite's busy handler, so a long wait is a wait, never "database is locked".

Two engines on one file stand for two gunicorn workers: each has its own turn and its own open
lock file, and an flock held through one open file blocks the other even inside one process.
"""
from __future__ import annotations

import fcntl
import logging
import threading
import time

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from ivr.store import calls, db, models, replies
from ivr.fifo import FifoSemaphore
from ivr.store.sqlite import WriteTurn


@pytest.fixture
def two_workers(tmp_path, monkeypatch):
    """Sessionmakers of two engines on one SQLite file, whose busy timeout is tiny (100 ms)."""
    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_MS", 100)
    url = f"sqlite:///{tmp_path / 'ivr.sqlite3'}"
    engines = [db.make_engine(url) for _ in range(2)]
    db.upgrade(engines[0])
    yield [sessionmaker(engine, expire_on_commit=False) for engine in engines]
    for engine in engines:
        engine.dispose()


def _turns(made) -> list[str]:
    with made() as s:
        return list(s.scalars(select(models.Turn.heard).order_by(models.Turn.id)))


def test_a_writer_waits_for_another_workers_transaction_longer_than_the_busy_timeout(two_workers):
    first, second = two_workers
    holder = first()
    calls.add_turn(holder, "CA1", "ask", "", "first", None, 0.9, None, None)   # holds the turn, uncommitted
    failures: list[BaseException] = []
    started = threading.Event()

    def other_worker() -> None:
        try:
            with second() as s:
                started.set()
                calls.add_turn(s, "CA2", "ask", "", "second", None, 0.9, None, None)
                replies.remember_response(s, "CA2:1", "<Response/>")
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            failures.append(exc)

    thread = threading.Thread(target=other_worker)
    thread.start()
    started.wait(10)
    # The other worker is waiting for the turn; keep it waiting well past SQLite's busy timeout.
    thread.join(timeout=1.0)
    assert thread.is_alive()
    replies.remember_response(holder, "CA1:1", "<Response/>")
    holder.close()
    thread.join(timeout=30)
    assert failures == []
    assert _turns(first) == ["first", "second"]


def test_a_read_before_another_workers_commit_does_not_stop_this_webhooks_write(two_workers):
    """The webhook's first read runs outside any transaction, so there is no stale snapshot to
    upgrade: SQLite would refuse that upgrade at once, without waiting ("database is locked")."""
    first, second = two_workers
    with first() as s:
        calls.ensure_call(s, "CA1", "", "")
        s.commit()
    with first() as reader:
        body, state = calls.recall_with_state(reader, ["CA1:1"], "CA1")
        assert body is None and state is not None
        with second() as other:   # another worker writes and commits in between
            calls.add_event(other, "CA1", "status", {"status": "ringing"})
            replies.remember_response(other, "CA1:0", "<Response/>")
        calls.add_turn(reader, "CA1", "ask", "", "after", None, 0.9, None, None)
        replies.remember_response(reader, "CA1:1", "<Response/>")
    assert _turns(first) == ["after"]
    with first() as s:
        assert s.scalar(select(func.count()).select_from(models.Event)) == 1


def test_the_turn_is_given_back_when_a_write_fails(two_workers):
    first, second = two_workers
    with first() as s:
        calls.ensure_call(s, "CA1", "", "")
        replies.remember_response(s, "CA1:1", "<Response>first</Response>")
    with first() as s:   # a Twilio retry racing its original: the duplicate answer fails the INSERT
        calls.add_turn(s, "CA1", "ask", "", "duplicate", None, 0.9, None, None)
        assert replies.remember_response(s, "CA1:1", "<Response>again</Response>") == "<Response>first</Response>"
    with second() as s:   # the other worker gets the turn: the failed transaction gave it back
        calls.add_turn(s, "CA1", "ask", "", "next", None, 0.9, None, None)
        replies.remember_response(s, "CA1:2", "<Response/>")
    assert _turns(first) == ["next"]


def test_fifo_lock_serves_waiters_in_the_order_they_came():
    lock = FifoSemaphore(1)
    assert lock.acquire(timeout=1)
    order: list[int] = []
    threads = []
    for n in range(5):
        def wait(n: int = n) -> None:
            assert lock.acquire(timeout=30)
            order.append(n)
            lock.release()
        thread = threading.Thread(target=wait)
        thread.start()
        threads.append(thread)
        while lock.waiting < n + 1:   # queued before the next one starts
            threading.Event().wait(0.001)
    lock.release()
    for thread in threads:
        thread.join(timeout=30)
    assert order == [0, 1, 2, 3, 4]
    assert lock.acquire(timeout=1)   # free again


def test_fifo_lock_wait_can_end_without_the_lock():
    lock = FifoSemaphore(1)
    assert lock.acquire(timeout=1)
    assert lock.acquire(timeout=0.01) is False
    assert lock.waiting == 0   # the one that gave up left the queue
    lock.release()
    assert lock.acquire(timeout=0.01)


def test_a_writer_stops_waiting_for_a_stuck_worker_and_the_next_one_waits_afresh(tmp_path, caplog):
    turn = WriteTurn(str(tmp_path / "ivr.sqlite3"), wait_s=0.2)
    gave_up = REGISTRY.get_sample_value("ivr_sqlite_write_turn_gave_up_total") or 0.0
    with open(turn.path, "ab") as stuck:   # another worker's open lock file, locked and never let go
        fcntl.flock(stuck.fileno(), fcntl.LOCK_EX)
        with caplog.at_level(logging.WARNING, logger="ivr.store.sqlite"):
            assert turn.take() is False    # gave up: goes ahead without the turn
            assert turn.take() is False    # the process's next writer is not stuck behind the first
        assert caplog.text.count("another worker's turn") == 2
        assert REGISTRY.get_sample_value("ivr_sqlite_write_turn_gave_up_total") == gave_up + 2   # alertable
        assert turn.local.acquire(timeout=0)   # the process's own lock was given back each time
        turn.local.release()
    turn.wait_s = 30   # the stuck worker let go: the wait left in the kernel ends, and the turn is free
    assert turn.take() is True
    with open(turn.path, "ab") as other:
        with pytest.raises(BlockingIOError):
            fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)   # this process holds it now
        turn.give()
        fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)       # and gave it back


def test_a_write_behind_a_stuck_worker_falls_back_to_the_busy_timeout_and_commits(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(db, "SQLITE_TURN_WAIT_S", 0.2)
    url = f"sqlite:///{tmp_path / 'ivr.sqlite3'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    made = sessionmaker(engine, expire_on_commit=False)
    try:
        with open(f"{tmp_path / 'ivr.sqlite3'}-writer.lock", "ab") as stuck:
            fcntl.flock(stuck.fileno(), fcntl.LOCK_EX)   # a worker stuck holding its turn (not SQLite's lock)
            with caplog.at_level(logging.WARNING, logger="ivr.store.sqlite"), made() as s:
                calls.add_turn(s, "CA1", "ask", "", "went ahead", None, 0.9, None, None)
                assert replies.remember_response(s, "CA1:1", "<Response/>") == "<Response/>"
            assert "another worker's turn" in caplog.text
        assert _turns(made) == ["went ahead"]
    finally:
        engine.dispose()


def _turn_metric(name: str) -> float:
    return REGISTRY.get_sample_value(f"ivr_sqlite_write_turn_{name}") or 0.0


def test_how_long_a_writer_waited_for_the_turn_is_counted(tmp_path):
    """ivr_sqlite_write_turn_wait_seconds: an admin sees writers queueing behind each other."""
    turn = WriteTurn(str(tmp_path / "ivr.sqlite3"), wait_s=30)
    count, total = _turn_metric("wait_seconds_count"), _turn_metric("wait_seconds_sum")
    with open(turn.path, "ab") as other:   # another worker holds its turn
        fcntl.flock(other.fileno(), fcntl.LOCK_EX)
        taker = threading.Thread(target=turn.take)
        taker.start()
        for _ in range(10_000):
            if turn.file_turn._waiting:     # the writer is queued now …
                break
            taker.join(0.001)
        else:
            pytest.fail("the writer never queued for the turn")
        queued_by = time.monotonic()
        taker.join(0.05)
        released_at = time.monotonic()     # … and still queued here: the other worker lets go after
        fcntl.flock(other.fileno(), fcntl.LOCK_UN)
        taker.join(30)
    turn.give()
    assert _turn_metric("wait_seconds_count") == count + 1
    assert _turn_metric("wait_seconds_sum") - total >= released_at - queued_by


def test_how_long_a_transaction_held_the_turn_is_counted(two_workers):
    """ivr_sqlite_write_turn_held_seconds: from a transaction's first write to its end."""
    first, _second = two_workers
    count, total = _turn_metric("held_seconds_count"), _turn_metric("held_seconds_sum")
    with first() as s:
        calls.add_turn(s, "CA1", "ask", "", "first", None, 0.9, None, None)   # the turn is taken
        written_at = time.monotonic()
        time.sleep(0.05)   # work inside the transaction, as a slow webhook would
        committing_at = time.monotonic()
        replies.remember_response(s, "CA1:1", "<Response/>")                 # commit: given back
    assert _turn_metric("held_seconds_count") == count + 1
    assert _turn_metric("held_seconds_sum") - total >= committing_at - written_at
