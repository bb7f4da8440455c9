"""The decode pool on its own: bounded, first come first served, deadlines, withdrawal, counters.

Jobs block on events the test controls, so nothing here depends on how fast the machine is.
"""
from __future__ import annotations

import threading
import time

import pytest

from ivr.speech.pool import DecodePool, PoolBusy, PoolLate


@pytest.fixture
def pool():
    pool = DecodePool(threads=1, queue_limit=2)
    yield pool
    pool.shutdown()


def block(pool: DecodePool) -> threading.Event:
    """Occupy the pool's only thread until the returned event is set."""
    release, started = threading.Event(), threading.Event()
    pool.submit(lambda: (started.set(), release.wait()))
    assert started.wait(10)
    return release


def test_jobs_run_in_the_order_they_came(pool):
    release = block(pool)
    order: list[int] = []
    futures = [pool.submit(order.append, n) for n in range(2)]
    release.set()
    for future in futures:
        future.result(10)
    assert order == [0, 1]


def test_a_full_queue_refuses_at_once_and_counts_it(pool):
    release = block(pool)
    waiting = [pool.submit(lambda: "ok") for _ in range(2)]
    with pytest.raises(PoolBusy):
        pool.submit(lambda: "one too many")
    stats = pool.stats()
    assert (stats.running, stats.waiting, stats.rejected) == (1, 2, 1)
    release.set()
    assert [f.result(10) for f in waiting] == ["ok", "ok"]


def test_giving_decoders_back_is_never_refused(pool):
    release = block(pool)
    for _ in range(2):
        pool.submit(lambda: None)
    returned = pool.submit(lambda: "decoder back", must_run=True)
    release.set()
    assert returned.result(10) == "decoder back"


def test_a_job_still_waiting_at_its_deadline_is_not_run(pool):
    release = block(pool)
    ran = threading.Event()
    late = pool.submit(ran.set, deadline=time.monotonic() - 1)   # already past
    release.set()
    with pytest.raises(PoolLate):
        late.result(10)
    assert not ran.is_set() and pool.stats().late == 1


def test_a_withdrawn_job_never_runs_and_frees_its_place(pool):
    release = block(pool)
    ran = threading.Event()
    withdrawn = pool.submit(ran.set)
    assert withdrawn.cancel()
    release.set()
    pool.submit(lambda: None).result(10)     # everything queued before it has been handled
    assert not ran.is_set()
    assert pool.stats().waiting == 0


def test_a_withdrawn_job_frees_its_queue_place_while_the_threads_are_still_busy(pool):
    """A dead call's (or a superseded pause's) decode must not keep a live caller out of the queue
    until a busy thread reaches it: its place is free the moment it is withdrawn."""
    release = block(pool)
    for _ in range(3):                           # queue_limit 2: without freeing, the 3rd is refused
        withdrawn = [pool.submit(lambda: None) for _ in range(2)]
        assert all(job.cancel() for job in withdrawn)
        assert pool.stats().waiting == 0
    live = [pool.submit(lambda: "heard") for _ in range(2)]
    release.set()
    assert [job.result(10) for job in live] == ["heard", "heard"]
    assert pool.stats().waiting == 0


def test_speculative_work_is_admitted_only_when_a_thread_is_idle(pool):
    assert pool.submit(lambda: "idle", idle_only=True).result(10) == "idle"
    release = block(pool)
    with pytest.raises(PoolBusy):
        pool.submit(lambda: None, idle_only=True)
    release.set()


def test_observers_hear_waits_rejections_and_lateness(pool):
    heard: list[str] = []
    pool.observe(lambda event, seconds: heard.append(event))
    release = block(pool)
    late = pool.submit(lambda: None, deadline=time.monotonic() - 1)
    fine = pool.submit(lambda: None)
    with pytest.raises(PoolBusy):
        pool.submit(lambda: None)
    release.set()
    fine.result(10)
    assert late.exception(10) is not None
    assert {"wait", "late", "rejected"} <= set(heard)


def test_a_failing_job_hands_its_error_to_the_waiter_and_the_pool_goes_on(pool):
    def boom():
        raise RuntimeError("engine fault")

    with pytest.raises(RuntimeError, match="engine fault"):
        pool.submit(boom).result(10)
    assert pool.submit(lambda: "still decoding").result(10) == "still decoding"
    assert pool.stats().running == 0


def test_a_job_that_would_start_after_its_deadline_is_refused_at_once():
    """Judging by how long jobs run, a queue this long means waiting past the deadline: better to
    tell the caller now ("please say that again") than after the wait."""
    pool = DecodePool(threads=1, queue_limit=10)
    try:
        slow = threading.Event()
        pool.submit(slow.wait, 0.05).result(10)        # one job ran: the pool knows jobs take time
        release = block(pool)
        pool.submit(lambda: None)
        with pytest.raises(PoolBusy):
            pool.submit(lambda: None, deadline=time.monotonic())   # two ahead, no time left
        assert pool.submit(lambda: "no deadline") is not None       # without one it just queues
        release.set()
    finally:
        pool.shutdown()
