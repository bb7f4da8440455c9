"""Concurrent Twilio retries of one webhook have one effect, on both backends."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from ivr.store import calls, db, models, replies

pytestmark = pytest.mark.db
WORKERS = 4


@pytest.fixture
def sessions(db_url):
    engine = db.make_engine(db_url)
    db.upgrade(engine)
    yield sessionmaker(engine, expire_on_commit=False)
    engine.dispose()


def _webhook(sessions, barrier: threading.Barrier, n: int, results: list, errors: list) -> None:
    """What a webhook does: check the key, do the work, remember the answer."""
    try:
        with sessions() as s:
            barrier.wait(timeout=10)  # all retries pass recall_response before any stores
            if replies.recall_response(s, "CAc:ask:1") is not None:
                results.append(replies.recall_response(s, "CAc:ask:1"))
                return
            calls.add_turn(s, "CAc", "ask", "", f"attempt {n}", None, 0.9, None, None)
            calls.add_event(s, "CAc", "decision", {"attempt": n})
            results.append(replies.remember_response(s, "CAc:ask:1", f"<Response>{n}</Response>"))
    except Exception as exc:  # collected and re-raised by the test thread
        errors.append(exc)


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_retries_have_one_effect(sessions, round_):
    with sessions() as s:
        calls.start_call(s, "CAc", "+15551234567", "+15550001111")
        s.commit()
    barrier = threading.Barrier(WORKERS)
    results: list[str] = []
    errors: list[Exception] = []
    threads = [threading.Thread(target=_webhook, args=(sessions, barrier, n, results, errors))
               for n in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert len(results) == WORKERS and len(set(results)) == 1  # everyone served the same answer
    with sessions() as s:
        turns = s.scalars(select(models.Turn.heard).where(models.Turn.call_sid == "CAc")).all()
        events = s.scalar(select(func.count()).select_from(models.Event).where(models.Event.call_sid == "CAc"))
    assert len(turns) == 1 and events == 1
    assert results[0] == f"<Response>{turns[0].split()[-1]}</Response>"  # the answer of the effect kept


def test_concurrent_start_call_creates_one_row(sessions):
    barrier = threading.Barrier(WORKERS)
    errors: list[Exception] = []

    def start() -> None:
        try:
            with sessions() as s:
                barrier.wait(timeout=10)
                calls.start_call(s, "CAs", "+15551234567", "+15550001111")
                s.commit()
        except Exception as exc:  # collected and re-raised by the test thread
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(models.Call)) == 1
