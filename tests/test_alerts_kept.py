"""Active alerts are kept per process for a moment (`ivr.store.alerts.ACTIVE_ALERTS_TTL_S`) instead of
read for every caller; an alert sent or ended anywhere reaches every instance's callers once that
moment has passed, and at once on the instance that sent or ended it. On SQLite and PostgreSQL.

The kept alerts' clock is moved by the tests (no waiting); "another process" is an app instance or
engine of its own on the same database, as `ivr alerts send` and the other gunicorn worker are.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from conftest import SettableClock, simulated_call
from ivr.store import alerts, db

pytestmark = pytest.mark.db
# Tuesday 10 March 2026, 10:00 in Chicago: the city is open.
OPEN = datetime(2026, 3, 10, 15, 0, tzinfo=timezone.utc)
MESSAGE = "We know about the water main break on Elm Street; crews are on site."


class KeptClock:
    def __init__(self, monkeypatch) -> None:
        self.now = 1000.0
        monkeypatch.setattr(alerts, "_clock", lambda: self.now)

    def expire(self) -> None:
        self.now += alerts.ACTIVE_ALERTS_TTL_S


@pytest.fixture
def kept(monkeypatch) -> KeptClock:
    return KeptClock(monkeypatch)


def publish(s: Session, now: datetime = OPEN) -> int:
    alert = alerts.create_alert(s, topic="water", intents=("water_main_break", "no_water"), message={"en": MESSAGE},
                                created_by="test", now=now - timedelta(minutes=5), until=now + timedelta(hours=4))
    s.commit()
    return alert.id


# --- the store ----------------------------------------------------------------------------------
@pytest.fixture
def engines(db_url):
    """Two engines on one database: this process's and another process's."""
    made = [db.make_engine(db_url) for _ in range(2)]
    db.upgrade(made[0])
    yield made
    for engine in made:
        engine.dispose()


def _selects(engine) -> list[str]:
    seen: list[str] = []
    event.listen(engine, "before_cursor_execute",
                 lambda _c, _cur, statement, *_r: seen.append(statement) if "FROM alerts" in statement else None)
    return seen


def test_active_alerts_are_read_once_per_moment_and_other_processes_changes_arrive_after_it(engines, kept):
    here, other = engines
    reads = _selects(here)
    with Session(here) as s:
        assert alerts.active_alert_for(s, intent="no_water", topic=None, now=OPEN) is None
        assert alerts.active_alert_for(s, intent="pothole", topic="roads", now=OPEN) is None
    assert len(reads) == 1                                  # the second caller was answered from memory
    with Session(other) as s:
        alert_id = publish(s)
    with Session(here) as s:
        assert alerts.active_alert_for(s, intent="no_water", topic=None, now=OPEN) is None   # not yet
        kept.expire()
        found = alerts.active_alert_for(s, intent="no_water", topic=None, now=OPEN)
        assert found is not None and found.id == alert_id and found.text("en") == MESSAGE
        assert alerts.active_alert_for(s, intent=None, topic="water", now=OPEN).id == alert_id
        # Kept alerts still expire on their own `until`, and are not active before they start.
        assert alerts.active_alert_for(s, intent="no_water", topic=None, now=OPEN + timedelta(hours=5)) is None
    with Session(other) as s:
        alerts.end_alert(s, alert_id, by="test", now=OPEN)
        s.commit()
    with Session(here) as s:
        assert alerts.active_alert_for(s, intent="no_water", topic=None, now=OPEN).id == alert_id
        kept.expire()
        assert alerts.active_alert_for(s, intent="no_water", topic=None, now=OPEN) is None


def test_an_alert_sent_or_ended_through_this_engine_is_heard_or_gone_at_once(engines, kept):
    here, _other = engines
    with Session(here) as s:
        assert alerts.active_alert_for(s, intent="no_water", topic=None, now=OPEN) is None
        alert_id = publish(s)
        assert alerts.active_alert_for(s, intent="no_water", topic=None, now=OPEN).id == alert_id
        alerts.end_alert(s, alert_id, by="test", now=OPEN)
        s.commit()
        assert alerts.active_alert_for(s, intent="no_water", topic=None, now=OPEN) is None


def test_a_clock_going_back_reads_again(engines, kept):
    here, _other = engines
    with Session(here) as s:
        alert_id = publish(s)
        later = OPEN + timedelta(hours=5)              # after the alert's `until`: not kept at all
        assert alerts.active_alert_for(s, intent="no_water", topic=None, now=later) is None
        assert alerts.active_alert_for(s, intent="no_water", topic=None, now=OPEN).id == alert_id


# --- two app instances (the two gunicorn workers) -----------------------------------------------
@pytest.fixture
def two_apps(app_config, db_url):
    from ivr import create_app

    config = {**app_config, "IVR_DATABASE_URL": db_url, "IVR_TTS": "off", "IVR_CLOCK": SettableClock(OPEN)}
    made = [create_app(config) for _ in range(2)]
    yield made
    for app in made:
        db.engine(app).dispose()


def _caller_hears_the_alert(app, number: int) -> bool:
    sim = simulated_call(app.test_client(), from_=f"+1312555{number:04d}")
    sim.call()
    sim.silence()
    sim.say("there is no water coming out of my taps")
    return MESSAGE in " ".join(sim.texts())


def test_an_alert_sent_on_one_worker_reaches_the_other_workers_callers(two_apps, kept):
    first, second = two_apps
    assert not _caller_hears_the_alert(second, 1)           # the second worker keeps "no alert"
    with first.app_context():
        alert_id = publish(db.session())
    assert _caller_hears_the_alert(first, 2)                # at once where it was sent
    assert not _caller_hears_the_alert(second, 3)           # the other worker: within the moment …
    kept.expire()
    assert _caller_hears_the_alert(second, 4)               # … then its callers hear it too
    with first.app_context():
        alerts.end_alert(db.session(), alert_id, by="test", now=OPEN)
        db.session().commit()
    assert not _caller_hears_the_alert(first, 5)
    kept.expire()
    assert not _caller_hears_the_alert(second, 6)
