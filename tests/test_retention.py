"""Retention forgets old transcripts, recordings, numbers, webhook answers and per-call prompt
renders — never a call in progress — on both backends, counted first by `ivr db prune --dry-run`."""
from __future__ import annotations

import os
import time
from datetime import datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.jobs import retention
from ivr.store import db, retention as store_retention
from ivr.store.models import Call, IdempotentResponse, Message, Recording, Turn, utcnow

pytestmark = pytest.mark.db

DAY = timedelta(days=1)


def _call(s: Session, sid: str, *, age_days: float, ended: bool = True, updated_days: float | None = None,
          number: str = "+15551234567") -> None:
    started = utcnow() - age_days * DAY
    updated = utcnow() - (age_days if updated_days is None else updated_days) * DAY
    s.add(Call(sid=sid, from_number=number, to_number="+13115550000", state={"heard": "my neighbour's dog",
                                                                             "prompt": "Did you say animals?"},
               pending_turn=None, outcome_detail={}, status="completed" if ended else "in-progress",
               started_at=started, updated_at=updated, ended_at=updated if ended else None))
    s.flush()
    s.add(Turn(call_sid=sid, step="ask", prompt="What are you calling about?", heard="my neighbour's dog barks",
               digits=None, confidence=0.8, classification={"explanation": "matched 'dog'"},
               decision={"kind": "transfer"}, created_at=started))
    s.add(Recording(call_sid=sid, url=f"https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE{sid}",
                    kind="voicemail", duration_s=12.0, created_at=started))
    s.add(Message(call_sid=sid, department="animals", kind="voicemail",
                  recording_url=f"https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE{sid}",
                  created_at=started))
    s.add(IdempotentResponse(key=f"{sid}:/voice/turn:1:ask:", body="<Response/>", created_at=started))


@pytest.fixture
def app(db_url, tmp_path):
    from conftest import store_only_app

    app = store_only_app(db_url, "retention-test")
    app.config["IVR_PROMPT_CACHE_DIR"] = str(tmp_path / "no-cache")
    engine = db.engine(app)
    if not db.is_memory_sqlite(db_url):
        db.upgrade(engine)
    with Session(engine) as s:
        _call(s, "CA_old", age_days=100)                     # everything goes
        _call(s, "CA_month", age_days=40)                    # only the number (and the reply)
        _call(s, "CA_week", age_days=7)                      # only the stored reply
        _call(s, "CA_fresh", age_days=0.5)                   # nothing
        _call(s, "CA_live", age_days=100, ended=False, updated_days=0.01)   # in progress: nothing
        _call(s, "CA_silent", age_days=100, ended=False)     # never told it ended, silent since: over
        s.commit()
    yield app


def _counts(app):
    return retention.run(app, dry_run=True).counts


def test_dry_run_counts_each_kind_and_changes_nothing(app):
    assert _counts(app) == {"transcripts": 2, "recordings": 4, "numbers": 3, "replies": 4, "prompt_renders": 0}
    assert _counts(app)["transcripts"] == 2   # still there
    with Session(db.engine(app)) as s:
        assert s.get(Call, "CA_old").from_number == "+15551234567"


def test_prune_removes_what_the_dry_run_counted_and_is_idempotent(app):
    counted = _counts(app)
    assert retention.run(app).counts == counted
    assert set(_counts(app).values()) == {0}
    assert set(retention.run(app).counts.values()) == {0}


def test_old_calls_lose_words_recordings_and_numbers_but_keep_their_story(app):
    retention.run(app)
    with Session(db.engine(app)) as s:
        for sid in ("CA_old", "CA_silent"):
            call = s.get(Call, sid)
            turn = s.scalars(select(Turn).where(Turn.call_sid == sid)).one()
            assert (turn.heard, turn.classification) == (None, None)
            assert turn.decision == {"kind": "transfer"} and turn.step == "ask"     # statistics stay
            assert call.state["heard"] == "" and call.state["prompt"] == ""
            assert s.scalars(select(Recording).where(Recording.call_sid == sid)).all() == []
            message = s.scalars(select(Message).where(Message.call_sid == sid)).one()
            assert message.recording_url is None and message.department == "animals"
            assert call.from_number.startswith("hash:") and "5551234567" not in call.from_number
        month = s.get(Call, "CA_month")
        assert month.from_number.startswith("hash:")
        assert s.scalars(select(Turn.heard).where(Turn.call_sid == "CA_month")).one() == "my neighbour's dog barks"
        # Same number, same salt → same hash: repeat callers stay countable.
        assert month.from_number == s.get(Call, "CA_old").from_number
        assert s.get(Call, "CA_week").from_number == "+15551234567"


def test_a_call_in_progress_is_never_pruned(app):
    retention.run(app)
    with Session(db.engine(app)) as s:
        live = s.get(Call, "CA_live")
        assert live.from_number == "+15551234567" and live.state["heard"]
        assert s.scalars(select(Turn.heard).where(Turn.call_sid == "CA_live")).one()
        assert len(s.scalars(select(Recording).where(Recording.call_sid == "CA_live")).all()) == 1
        keys = set(s.scalars(select(IdempotentResponse.key)))
    assert keys == {"CA_live:/voice/turn:1:ask:", "CA_fresh:/voice/turn:1:ask:"}


def test_configured_days_and_zero_keeps_forever(app):
    app.config.update(IVR_RETAIN_NUMBERS_DAYS="0", IVR_RETAIN_TRANSCRIPTS_DAYS="30")
    counts = _counts(app)
    assert counts["numbers"] == 0 and counts["transcripts"] == 3
    app.config["IVR_RETAIN_REPLIES_DAYS"] = "soon"
    with pytest.raises(ValueError, match="IVR_RETAIN_REPLIES_DAYS"):
        _counts(app)


def test_configured_salt_is_used_and_the_database_salt_is_shared(app):
    with Session(db.engine(app)) as s:
        first = store_retention.number_salt(s)
        assert store_retention.number_salt(s) == first   # made once, then read back
    app.config["IVR_NUMBER_HASH_SALT"] = "city-secret"
    retention.run(app)
    with Session(db.engine(app)) as s:
        assert s.get(Call, "CA_old").from_number == store_retention.hash_number("+1 (555) 123-4567", "city-secret")


def test_a_second_instance_skips_while_the_first_prunes(app, db_url):
    if not db_url.startswith("postgresql"):
        pytest.skip("the database lock is PostgreSQL's; SQLite has one writer at a time")
    with db.engine(app).connect() as other:
        assert store_retention.try_lock(other)
        try:
            report = retention.run(app)
            assert report.skipped and "elsewhere" in report.lines()[0]
        finally:
            store_retention.unlock(other)
    assert not retention.run(app).skipped


def test_cli_dry_run_prints_counts_per_kind(app, db_url, tmp_path, monkeypatch):
    from ivr.cli import cli

    for name, value in {"IVR_SPEECH_ENGINE": "twilio", "IVR_CAPTURE": "twilio", "IVR_TTS": "off",
                        "IVR_JOBS_DB": str(tmp_path / "jobs.sqlite3")}.items():
        monkeypatch.setenv(name, value)

    result = CliRunner().invoke(cli, ["db", "prune", "--url", db_url, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "transcripts           2  would go" in result.output
    assert "numbers               3  would go" in result.output
    assert _counts(app)["numbers"] == 3
    result = CliRunner().invoke(cli, ["db", "prune", "--url", db_url])
    assert result.exit_code == 0, result.output
    assert "numbers               3  removed" in result.output
    assert _counts(app)["numbers"] == 0


def test_prompt_renders_older_than_a_week_go_but_fixed_prompts_stay(app_config, tmp_path):
    from ivr import create_app

    app = create_app({**app_config, "IVR_TTS": "off"})
    cache = tmp_path / "prompt-cache"
    cache.mkdir(exist_ok=True)
    fixed = sorted(retention._fixed_names(app))[0]
    old = time.time() - 8 * 86400
    for name, mtime in ((fixed, old), ("a" * 32, old), ("b" * 32, time.time())):
        (cache / f"{name}.wav").write_bytes(b"RIFF")
        os.utime(cache / f"{name}.wav", (mtime, mtime))
    assert retention.run(app, dry_run=True).counts["prompt_renders"] == 1
    assert retention.run(app).counts["prompt_renders"] == 1
    assert sorted(p.stem for p in cache.glob("*.wav")) == sorted([fixed, "b" * 32])


def test_the_hourly_task_is_scheduled_and_runs_once_at_a_time(app_config):
    from huey.api import PeriodicTask

    from ivr import create_app, jobs

    app = create_app(app_config)
    hourly = retention.prune_hourly.task_class()
    assert isinstance(hourly, PeriodicTask)
    assert hourly.validate_datetime(datetime(2026, 1, 1, 3, 17))
    assert not hourly.validate_datetime(datetime(2026, 1, 1, 3, 18))
    with app.app_context():
        with jobs.huey.lock_task(retention.LOCK_NAME):
            assert retention.prune_task.call_local() == {}      # another worker holds the lock
        assert set(retention.prune_task.call_local()) == set(retention.KINDS)


def test_recordings_are_deleted_at_twilio_and_a_failed_delete_is_retried(app, monkeypatch, tmp_path):
    from http.server import BaseHTTPRequestHandler

    from https_server import HTTPSServer, trust

    trust(monkeypatch, tmp_path)
    deletes: list[tuple[str, str | None]] = []
    failing = {"/2010-04-01/Accounts/AC1/Recordings/RECA_silent.json"}

    class Twilio(BaseHTTPRequestHandler):
        def do_DELETE(self) -> None:  # noqa: N802
            deletes.append((self.path, self.headers.get("Authorization")))
            self.send_response(500 if self.path in failing else 204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPSServer(Twilio).start()
    try:
        host = f"127.0.0.1:{server.port}"
        with Session(db.engine(app)) as s:
            for recording in s.scalars(select(Recording)):
                recording.url = recording.url.replace("https://api.twilio.com", f"https://{host}")
            s.commit()
        app.config.update(IVR_RECORDING_HOST=host, TWILIO_ACCOUNT_SID="AC" + "1" * 32, TWILIO_AUTH_TOKEN="tok")
        assert retention.run(app).counts["recordings"] == 3        # 2 messages' URLs + CA_old's recording
        assert sorted(path for path, _ in deletes) == ["/2010-04-01/Accounts/AC1/Recordings/RECA_old.json",
                                                       "/2010-04-01/Accounts/AC1/Recordings/RECA_silent.json"]
        assert all(auth and auth.startswith("Basic ") for _, auth in deletes)
        with Session(db.engine(app)) as s:
            assert [r.call_sid for r in s.scalars(select(Recording).where(Recording.call_sid.in_(
                ["CA_old", "CA_silent"])))] == ["CA_silent"]            # kept: Twilio failed, retry later
        failing.clear()
        assert retention.run(app).counts["recordings"] == 1
        assert _counts(app)["recordings"] == 0
    finally:
        server.stop()
