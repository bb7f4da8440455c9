"""Two `ivr worker` processes drain one outbox into the fake Twilio REST API: every text is sent
exactly once. On SQLite with the embedded SQLite job queue, and on PostgreSQL with the queue on
Redis (the several-machines set-up)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from conftest import redis_url_or_skip
from fake_twilio_rest import ACCOUNT_SID, AUTH_TOKEN, FakeTwilioRest
from ivr import jobs, outbox
from ivr.jobs import queue
from ivr.jobs.outbox import deliver_task
from ivr.store import db
from ivr.store import outbox as store

pytestmark = pytest.mark.db

TEXTS = 240
REDIS_URL = os.environ.get("IVR_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    # Output to a file, not a pipe: a pipe nobody reads until the end fills up and stalls the worker.
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "ivr.cli", "worker", "--workers", "2", "--no-periodic"],
                                env=env, stdout=out, stderr=subprocess.STDOUT, text=True)


def _wait_until_consuming(workers: list[subprocess.Popen], logs: list[Path]) -> None:
    deadline = time.monotonic() + 120
    while not all(log.exists() and "Huey consumer started" in log.read_text() for log in logs):
        assert time.monotonic() < deadline and all(w.poll() is None for w in workers), \
            [log.read_text()[-2000:] for log in logs if log.exists()]
        time.sleep(0.2)


@pytest.mark.timeout(300)
def test_two_worker_processes_never_send_a_text_twice(app_config, db_url, tmp_path):
    from ivr import create_app

    backend = "postgresql" if db_url.startswith("postgresql") else "sqlite"
    queue_settings = {"IVR_REDIS_URL": redis_url_or_skip(REDIS_URL)} if backend == "postgresql" else \
        {"IVR_JOBS_DB": str(tmp_path / "jobs.sqlite3")}
    # Twilio answers in 20 ms (it takes 100-300 ms for real): the drains overlap instead of the
    # first process to wake sending everything before the second looks.
    with FakeTwilioRest(delay_s=0.02) as twilio:
        settings = {"IVR_DATABASE_URL": db_url, "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                    "IVR_TWILIO_API_URL": twilio.url, "IVR_SMS_FROM": "+13125550311",
                    "IVR_OUTBOX_BATCH": "5", **queue_settings}
        app = create_app({**app_config, **settings})
        env = {**os.environ, **settings, "IVR_PROMPT_CACHE_DIR": app_config["IVR_PROMPT_CACHE_DIR"],
               "IVR_SPEECH_ENGINE": "twilio", "IVR_CAPTURE": "twilio", "IVR_TTS": "off"}
        logs = [tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
        workers = [_start_worker(env, log) for log in logs]
        try:
            _wait_until_consuming(workers, logs)     # both poll before there is anything to send
            with Session(db.engine(app)) as s:
                for n in range(TEXTS):
                    outbox.send_sms(s, to=f"+1312555{n:04d}", body=f"text {n}", key=f"two-workers:{n}",
                                    purpose="test")
                s.commit()                      # wakes one drain; more below so both processes drain
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                for _ in range(4):
                    deliver_task()              # a wake-up for each thread of each worker
                with Session(db.engine(app)) as s:
                    if store.stats(s).waiting == 0:
                        break
                time.sleep(1.0)
        finally:
            for worker in workers:
                worker.terminate()
                worker.wait(timeout=30)
            outputs = [log.read_text() for log in logs]
            jobs.huey.flush()
            queue.configure(app_config, app.instance_path)
        sent_bodies = Counter(message["Body"] for message in twilio.messages)
    assert all("ivr worker: queue" in output for output in outputs), outputs
    with Session(db.engine(app)) as s:
        rows = store.search(s, limit=TEXTS + 10)
    assert [r.status for r in rows].count("sent") == TEXTS, [output[-3000:] for output in outputs]
    duplicates = {body: n for body, n in sent_bodies.items() if n > 1}
    assert duplicates == {}
    assert set(sent_bodies) == {f"text {n}" for n in range(TEXTS)}
    assert len({r.provider_id for r in rows}) == TEXTS
    # Both processes took part (claims name host:pid:thread), or the test proved nothing.
    processes = {r.claimed_by.split(":")[1] for r in rows}
    assert len(processes) == 2, processes


class BlackHole:
    """A TCP listener that accepts connections and never answers: a send hangs on it."""

    def __init__(self) -> None:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def close(self) -> None:
        self.sock.close()


@pytest.mark.timeout(300)
def test_a_worker_killed_while_holding_claims_leaves_them_to_another_after_the_lease(app_config, db_url, tmp_path):
    """Worker A claims texts and hangs sending the first (its 'Twilio' never answers); it is
    killed (SIGKILL: no clean-up). Its rows stay `sending`, untouched, until the lease ends; then
    worker B sends each of them exactly once."""
    import signal

    from ivr import create_app

    lease_s = 30      # long enough for worker B to start (seconds under load) inside it
    hole = BlackHole()
    with FakeTwilioRest() as twilio:
        settings = {"IVR_DATABASE_URL": db_url, "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                    "IVR_SMS_FROM": "+13125550311", "IVR_OUTBOX_BATCH": "5", "IVR_OUTBOX_LEASE_S": str(lease_s),
                    "IVR_JOBS_DB": str(tmp_path / "jobs.sqlite3")}
        app = create_app({**app_config, **settings})
        env = {**os.environ, **settings, "IVR_PROMPT_CACHE_DIR": app_config["IVR_PROMPT_CACHE_DIR"],
               "IVR_SPEECH_ENGINE": "twilio", "IVR_CAPTURE": "twilio", "IVR_TTS": "off"}
        worker_b = None
        try:
            jobs.huey.flush()
            worker_a = _start_worker({**env, "IVR_TWILIO_API_URL": hole.url}, tmp_path / "worker-a.log")
            with Session(db.engine(app)) as s:
                for n in range(3):
                    outbox.send_sms(s, to=f"+1312555{n:04d}", body=f"text {n}", key=f"crash:{n}", purpose="test")
                s.commit()                                   # wakes worker A
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                with Session(db.engine(app)) as s:
                    if store.stats(s).by_status()["sending"] == 3:
                        break
                time.sleep(0.2)
            worker_a.send_signal(signal.SIGKILL)             # dies holding three claims, mid-send
            worker_a.wait(timeout=30)
            with Session(db.engine(app)) as s:
                held = store.search(s)
            assert [r.status for r in held] == ["sending"] * 3
            killed_at = time.monotonic()
            worker_b = _start_worker({**env, "IVR_TWILIO_API_URL": twilio.url}, tmp_path / "worker-b.log")
            statuses_during_lease = []
            while time.monotonic() < deadline:
                deliver_task()
                with Session(db.engine(app)) as s:
                    rows = store.search(s)
                b_running = "Huey consumer started" in (tmp_path / "worker-b.log").read_text()
                if b_running and time.monotonic() - killed_at < lease_s - 3:   # B polls, well inside the lease
                    statuses_during_lease.append([r.status for r in rows])
                if all(r.status == "sent" for r in rows):
                    break
                time.sleep(0.5)
        finally:
            hole.close()
            if worker_b is not None:
                worker_b.terminate()
                worker_b.wait(timeout=30)
            jobs.huey.flush()
            queue.configure(app_config, app.instance_path)
        bodies = sorted(message["Body"] for message in twilio.messages)
    assert statuses_during_lease and all(s == ["sending"] * 3 for s in statuses_during_lease)
    assert [r.status for r in rows] == ["sent"] * 3 and all(r.attempts == 2 for r in rows)
    assert bodies == ["text 0", "text 1", "text 2"]                 # each once
    assert all(r.claimed_by.split(":")[1] == str(worker_b.pid) for r in rows)
