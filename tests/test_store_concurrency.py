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
        calls.ensure_call(s, "CAc", "+15551234567", "+15550001111")
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


def test_concurrent_ensure_call_creates_one_row(sessions):
    barrier = threading.Barrier(WORKERS)
    errors: list[Exception] = []

    def start() -> None:
        try:
            with sessions() as s:
                barrier.wait(timeout=10)
                calls.ensure_call(s, "CAs", "+15551234567", "+15550001111")
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


def _worker_process(url: str, worker: int, threads: int, webhooks: int, out) -> None:
    """One gunicorn-like worker: `threads` threads each serving `webhooks` webhooks of their calls."""
    import dataclasses

    from ivr.store.convert import state_from_dict

    engine = db.make_engine(url)
    made = sessionmaker(engine, expire_on_commit=False)
    failures: list[str] = []

    def serve(thread: int) -> None:
        for n in range(webhooks):
            sid = f"CA{worker}x{thread}x{n % 3}"
            try:
                with made() as s:
                    body, state = calls.recall_with_state(s, [f"{sid}:{n}"], sid)   # the read first
                    calls.ensure_call(s, sid, "+15551234567", "+15550001111")
                    calls.add_turn(s, sid, "ask", "", f"turn {n}", None, 0.9, None, None)
                    calls.save_state(s, sid, dataclasses.replace(state or state_from_dict({}), step="ask"))
                    calls.add_event(s, sid, "decision", {"n": n})
                    replies.remember_response(s, f"{sid}:{n}", "<Response/>")
            except Exception as exc:  # noqa: BLE001 - every failure is reported to the test
                failures.append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")

    pool = [threading.Thread(target=serve, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    engine.dispose()
    out.put(failures)


def test_two_worker_processes_on_one_sqlite_file_never_see_database_is_locked(tmp_path):
    """gunicorn's 2 workers × threads write one SQLite file at once: every webhook's writes commit."""
    import multiprocessing

    url = f"sqlite:///{tmp_path / 'ivr.sqlite3'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    engine.dispose()
    context = multiprocessing.get_context("fork")   # the test module is not importable by name in a child
    out = context.Queue()
    threads, webhooks = 8, 25
    processes = [context.Process(target=_worker_process, args=(url, w, threads, webhooks, out)) for w in range(2)]
    for process in processes:
        process.start()
    failures = [item for _ in processes for item in out.get(timeout=300)]
    for process in processes:
        process.join(timeout=60)
    assert failures == []
    engine = db.make_engine(url)
    with sessionmaker(engine)() as s:
        assert s.scalar(select(func.count()).select_from(models.Turn)) == 2 * threads * webhooks
    engine.dispose()
