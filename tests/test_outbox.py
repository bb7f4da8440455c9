"""The durable outbox: rows written in the caller's transaction, the worker woken only after the
commit, claims that two workers never share, retries with backoff, dead rows and their reasons —
texts delivered through the fake Twilio REST API, on SQLite and PostgreSQL."""
from __future__ import annotations

import random
from datetime import timedelta

import pytest

from fake_twilio_rest import ACCOUNT_SID, AUTH_TOKEN, FakeTwilioRest
from outbox_helpers import make_due, outbox_app, outbox_rows, outbox_session
from ivr import outbox
from ivr.outbox import worker as outbox_worker
from ivr.store import outbox as store
from ivr.store.models import utcnow

pytestmark = pytest.mark.db

CITY = "+13125550311"
CITIZEN = "+13125550104"


@pytest.fixture
def app(db_url, tmp_path):
    app = outbox_app(db_url, "outbox-test")
    app.config.update(TWILIO_ACCOUNT_SID=ACCOUNT_SID, TWILIO_AUTH_TOKEN=AUTH_TOKEN, IVR_SMS_FROM=CITY)
    return app


@pytest.fixture
def twilio(app):
    with FakeTwilioRest() as fake:
        app.config["IVR_TWILIO_API_URL"] = fake.url
        yield fake


@pytest.fixture
def wakes(monkeypatch):
    """Wake-ups the outbox asks for (instead of the huey task), in order."""
    seen: list[object] = []
    monkeypatch.setattr(outbox, "_wakers", [seen.append])
    return seen


def _text(app, key="case:1234567", to=CITIZEN, body="Your case number is 123-4567."):
    with outbox_session(app) as s:
        created = outbox.send_sms(s, to=to, body=body, key=key, purpose="case-number")
        s.commit()
    return created


def test_a_row_is_written_in_the_callers_transaction_and_the_key_makes_it_once(app, wakes):
    assert _text(app) is True
    assert _text(app) is False                       # a retried webhook enqueues the same key
    [row] = outbox_rows(app)
    assert (row.kind, row.target, row.status, row.attempts) == ("sms", CITIZEN, "pending", 0)
    assert row.payload == {"body": "Your case number is 123-4567.", "purpose": "case-number"}
    assert wakes == [None]                           # one wake-up, for the commit that created it


def test_the_worker_is_woken_only_after_the_commit_and_never_for_a_rollback(app, wakes):
    with outbox_session(app) as s:
        outbox.send_sms(s, to=CITIZEN, body="one", key="k1", purpose="test")
        outbox.send_sms(s, to=CITIZEN, body="two", key="k2", purpose="test")
        assert wakes == []                           # not yet: the rows are invisible to workers
        s.commit()
        assert wakes == [None]                       # once per transaction, however many rows
        outbox.send_sms(s, to=CITIZEN, body="three", key="k3", purpose="test")
        s.rollback()
        s.commit()
    assert wakes == [None]
    assert [r.key for r in outbox_rows(app)] == ["k1", "k2"]


def test_a_delayed_row_wakes_the_worker_for_its_time(app, wakes):
    later = utcnow() + timedelta(minutes=5)
    with outbox_session(app) as s:
        outbox.send_sms(s, to=CITIZEN, body="later", key="k-later", purpose="test", not_before=later)
        s.commit()
    assert wakes == [later]
    assert outbox_worker.drain(app).counts["sent"] == 0      # not due yet


def test_a_text_is_delivered_through_twilio_and_marked_sent_with_its_sid(app, twilio):
    _text(app)
    report = outbox_worker.drain(app)
    assert report.counts["sent"] == 1
    [message] = twilio.messages
    assert (message["To"], message["From"], message["Body"]) == (CITIZEN, CITY, "Your case number is 123-4567.")
    [row] = outbox_rows(app)
    assert row.status == "sent" and row.provider_id.startswith("SM") and row.attempts == 1
    assert row.sent_at is not None and row.lease_until is None
    assert outbox_worker.drain(app).counts["sent"] == 0      # sent once, never again
    assert len(twilio.messages) == 1


def test_an_unsubscribed_number_is_dead_at_once_with_twilios_reason(app, twilio):
    _text(app)
    twilio.fail_next(400, 21610, "Attempt to send to unsubscribed recipient")
    report = outbox_worker.drain(app)
    assert report.counts == {"sent": 0, "retry": 0, "dead": 1, "lost": 0}
    [row] = outbox_rows(app)
    assert row.status == "dead" and "21610" in row.last_error and "unsubscribed" in row.last_error


def test_twilio_down_then_back_delivers_once(app, twilio):
    port = int(twilio.url.rsplit(":", 1)[1])
    twilio.stop()                                    # Twilio unreachable
    _text(app)
    assert outbox_worker.drain(app).counts["retry"] == 1
    [row] = outbox_rows(app)
    assert row.status == "failed" and row.attempts == 1 and "unreachable" in row.last_error
    assert row.next_attempt_at > utcnow()            # backed off
    assert outbox_worker.drain(app).counts == {"sent": 0, "retry": 0, "dead": 0, "lost": 0}   # not due yet
    with FakeTwilioRest(port=port) as back:          # Twilio is back, same address
        back.fail_next(503, 20500, "Service unavailable")
        make_due(app)
        assert outbox_worker.drain(app).counts["retry"] == 1
        make_due(app)
        assert outbox_worker.drain(app).counts["sent"] == 1
        assert len(back.messages) == 1
    [row] = outbox_rows(app)
    assert row.status == "sent" and row.attempts == 3 and row.last_error == ""


def test_too_many_attempts_make_a_row_dead_and_retry_revives_it(app, twilio):
    app.config["IVR_OUTBOX_MAX_ATTEMPTS"] = 2
    _text(app)
    for _ in range(2):
        twilio.fail_next(500, 20500, "Internal error")
        make_due(app)
        outbox_worker.drain(app)
    [row] = outbox_rows(app)
    assert row.status == "dead" and row.attempts == 2 and "gave up after 2 attempts" in row.last_error
    with outbox_session(app) as s:
        assert store.retry(s) == 1
        s.commit()
    assert outbox_worker.drain(app).counts["sent"] == 1
    assert outbox_rows(app)[0].status == "sent"


def test_backoff_doubles_with_jitter_and_is_capped():
    rng = random.Random(7)
    for attempts in range(1, 12):
        delay = outbox_worker.backoff_s(attempts, 30, 3600, rng)
        full = min(3600, 30 * 2 ** (attempts - 1))
        assert full / 2 <= delay <= full
    spread = {round(outbox_worker.backoff_s(3, 30, 3600, rng), 3) for _ in range(20)}
    assert len(spread) > 10                          # jitter: retries of one outage do not bunch


def test_two_workers_claiming_at_once_never_share_a_row(app):
    with outbox_session(app) as s:
        for n in range(10):
            outbox.send_sms(s, to=CITIZEN, body=f"n{n}", key=f"k{n}", purpose="test")
        s.commit()
    with outbox_session(app) as a, outbox_session(app) as b:
        first = store.claim(a, "worker-a", limit=6, lease_s=60)
        a.commit()
        second = store.claim(b, "worker-b", limit=6, lease_s=60)
        b.commit()
    assert len(first) == 6 and len(second) == 4
    assert not {r.id for r in first} & {r.id for r in second}


def test_a_crash_after_the_claim_is_recovered_when_the_lease_runs_out(app, twilio):
    """A worker claims a row and dies before sending (or before marking it sent): nobody touches
    the row while the lease lasts; then another worker sends it. The dead worker's late
    'sent' cannot overwrite the new owner's record."""
    _text(app)
    now = utcnow()
    with outbox_session(app) as s:
        [claimed] = store.claim(s, "crashed", limit=10, lease_s=300, now=now)
        s.commit()
    assert outbox_worker.drain(app).counts["sent"] == 0          # leased: left alone
    with outbox_session(app) as s:                                     # five minutes later
        [again] = store.claim(s, "rescuer", limit=10, lease_s=300, now=now + timedelta(seconds=301))
        s.commit()
    assert again.id == claimed.id and again.attempts == 2
    with outbox_session(app) as s:
        assert store.mark_sent(s, claimed.id, "crashed", "SMlate") is False   # lost its claim
        assert store.mark_sent(s, again.id, "rescuer", "SMnew") is True
        s.commit()
    [row] = outbox_rows(app)
    assert (row.status, row.provider_id) == ("sent", "SMnew")


def test_a_number_that_opted_out_is_never_texted(app, twilio):
    """STOP is checked when the text is sent: a STOP that arrives while the text waits stops it."""
    from ivr.store import sms_contacts

    _text(app)
    _text(app, key="other", to="+13125550199")
    with outbox_session(app) as s:
        sms_contacts.opt_out(s, CITIZEN)
        s.commit()
    report = outbox_worker.drain(app)
    assert report.counts["dead"] == 1 and report.counts["sent"] == 1
    assert [m["To"] for m in twilio.messages] == ["+13125550199"]
    dead = [r for r in outbox_rows(app) if r.status == "dead"]
    assert dead[0].target == CITIZEN and "opted out" in dead[0].last_error


def test_stats_count_rows_by_kind_and_status_and_the_oldest_waiting(app, twilio):
    _text(app, key="a")
    _text(app, key="b")
    outbox_worker.drain(app, max_rows=1)
    with outbox_session(app) as s:
        stats = store.stats(s)
    assert stats.by_status()["sent"] == 1 and stats.by_status()["pending"] == 1 and stats.waiting == 1
    assert stats.oldest_waiting is not None and stats.oldest_waiting <= utcnow()


def test_rows_due_soon_get_one_chained_wake_up_however_many_drains_end(app, tmp_path):
    """Alert texts spread one a second (not_before) and retries due within the minute are woken
    by one chained huey task at the earliest due time — not one per drain, not one per row."""
    from ivr import jobs
    from ivr.jobs import outbox as outbox_jobs
    from ivr.jobs import queue

    queue.configure({"IVR_JOBS_DB": str(tmp_path / "jobs.sqlite3")}, tmp_path)
    jobs.huey.flush()
    first = utcnow() + timedelta(seconds=20)
    with outbox_session(app) as s:
        for n in range(3):
            outbox.send_sms(s, to=CITIZEN, body=f"alert {n}", key=f"alert:{n}", purpose="alert",
                            not_before=first + timedelta(seconds=n))
        s.commit()
    jobs.huey.flush()                                 # forget the commit's own wake-up
    with app.app_context():
        for _ in range(3):                            # three drains end (three worker threads)
            outbox_jobs._drain_now()
    [scheduled] = jobs.huey.pending()                 # a task with an eta waits in the queue
    assert scheduled.name.endswith("chained_task") and abs((scheduled.eta - first.replace(tzinfo=None)).total_seconds()) < 1
    assert jobs.huey.get(outbox_jobs.CHAIN_KEY, peek=True) == pytest.approx(first.timestamp())
    with app.app_context():
        outbox_jobs.chained_task.call_local()          # the chain's task runs: takes the key, chains again
    assert jobs.huey.get(outbox_jobs.CHAIN_KEY, peek=True) == pytest.approx(first.timestamp())
    assert len(jobs.huey.pending()) == 2              # the chain's next link (the first is due but not run here)
    jobs.huey.flush()
