"""The job queue: SQLite in the instance folder by default, Redis when IVR_REDIS_URL is set,
consumed by `ivr worker` with the app's settings."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import redis_url_or_skip
from ivr import jobs
from ivr.jobs import queue, retention


def test_default_queue_is_a_sqlite_file(app_config, tmp_path):
    from huey.storage import SqliteStorage

    from ivr import create_app

    app = create_app(app_config)
    assert isinstance(jobs.huey.storage, SqliteStorage)
    assert jobs.huey.storage.filename == str(tmp_path / "jobs.sqlite3")
    assert jobs.storage_description(app.config, app.instance_path) == f"sqlite {tmp_path / 'jobs.sqlite3'}"


def test_redis_url_puts_the_queue_on_redis(app_config):
    url = redis_url_or_skip(os.environ.get("IVR_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"))
    from huey.storage import RedisStorage

    from ivr import create_app

    app = create_app({**app_config, "IVR_REDIS_URL": url})
    try:
        assert isinstance(jobs.huey.storage, RedisStorage)
        assert jobs.storage_description(app.config, app.instance_path) == "redis redis://127.0.0.1:6379/15"
        jobs.huey.flush()
        pending = retention.prune_task()          # enqueued, not run
        assert jobs.huey.pending_count() == 1
        task = jobs.huey.dequeue()
        jobs.huey.execute(task)                   # what a worker does
        assert set(pending.get()) == set(retention.KINDS)
    finally:
        jobs.huey.flush()
        queue.configure(app_config, app.instance_path)


def test_redis_url_without_the_client_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(jobs.JobsConfigError, match=r"city-ivr\[redis\]"):
        queue.configure({"IVR_REDIS_URL": "redis://127.0.0.1:6379/15"}, tmp_path)
    queue.configure({"IVR_JOBS_DB": str(tmp_path / "jobs.sqlite3")}, tmp_path)


def test_immediate_mode_runs_tasks_when_enqueued(app_config):
    from ivr import create_app

    create_app({**app_config, "IVR_JOBS_IMMEDIATE": True})
    try:
        assert set(retention.prune_task().get()) == set(retention.KINDS)
    finally:
        create_app(app_config)
    assert not jobs.huey.immediate


def test_ivr_worker_consumes_the_queue(app_config, tmp_path):
    """A real `ivr worker` process picks up a task this process enqueued on the shared SQLite queue."""
    from ivr import create_app

    create_app(app_config)
    jobs.huey.flush()
    env = {**os.environ, "IVR_DATABASE_URL": app_config["IVR_DATABASE_URL"], "IVR_JOBS_DB": app_config["IVR_JOBS_DB"],
           "IVR_PROMPT_CACHE_DIR": app_config["IVR_PROMPT_CACHE_DIR"], "IVR_SPEECH_ENGINE": "twilio",
           "IVR_CAPTURE": "twilio", "IVR_TTS": "off"}
    worker = subprocess.Popen([sys.executable, "-m", "ivr.cli", "worker", "--workers", "1", "--no-periodic"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        result = retention.prune_task()
        assert set(result.get(blocking=True, timeout=30)) == set(retention.KINDS)
    finally:
        worker.terminate()
        output = worker.communicate(timeout=15)[0]
    assert "ivr worker: queue sqlite" in output
    assert "Executing ivr.jobs.retention.prune_task" in output or "prune_task" in output
