"""Service requests in the database (ivr.store.service_requests) and `ivr requests`, on SQLite and PostgreSQL."""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from conftest import RULES_PATH

from ivr.routing import services
from ivr.routing.load import load_rules
from ivr.store import db, service_requests

pytestmark = pytest.mark.db

RULES = load_rules(RULES_PATH)
POTHOLE = services.service_for_intent(RULES, "pothole")
GRAFFITI = services.service_for_intent(RULES, "graffiti")
PHONE = "+13125550177"
MASKED = "+1******0177"   # ivr.store.privacy.mask_number(PHONE)
T0 = datetime(2026, 12, 7, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def engine(db_url):
    engine = db.make_engine(db_url)
    db.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def notified(monkeypatch):
    """What `create` handed the outbox: (request, rules) per notification."""
    calls = []

    def notify(s, request, rules):
        calls.append((request, rules))
        return 1

    monkeypatch.setattr(service_requests, "notify_department", notify)
    return calls


def make(s, key="voice:CA1", service=POTHOLE, **overrides):
    fields = dict(source_key=key, channel="voice", service=service, description="a huge pothole",
                  address="12 Main Street", lat=None, long=None, language="en", contact_phone=PHONE,
                  contact_email=None, text_consent=True, call_sid="CA1", rules=RULES)
    fields.update(overrides)
    return service_requests.create(s, **fields)


def rows(s, table="service_requests"):
    return s.execute(select(func.count()).select_from(service_requests.Base.metadata.tables[table])).scalar_one()


def test_a_request_is_stored_with_a_case_number_and_its_department_notified(engine, notified):
    with Session(engine) as s:
        request = make(s, now=T0)
        s.commit()
    assert services.is_case_number(request.case_number) and len(request.case_number) == 7
    assert (request.service_code, request.service_name, request.department, request.intent) == \
        ("pothole", "Pothole", "roads", "pothole")
    assert (request.status, request.status_notes, request.channel, request.text_consent) == ("open", "", "voice", True)
    assert request.created_at == request.updated_at == T0 and request.created_at.tzinfo is not None
    assert notified == [(request, RULES)]
    with Session(engine) as s:
        spaced = f"{request.case_number[:3]} {request.case_number[3:]}"
        assert service_requests.by_case(s, spaced) == request
        assert service_requests.by_source(s, "voice:CA1") == request
        assert [(c.status, c.by) for c in service_requests.history(s, request.case_number)] == [("open", "voice")]


def test_a_retry_gets_the_same_request_and_notifies_nobody_again(engine, notified):
    with Session(engine) as s:
        first = make(s)
        s.commit()
    with Session(engine) as s:
        again = make(s, description="something else entirely")
        s.commit()
        assert again == first and rows(s) == 1 and rows(s, "service_request_updates") == 1
    assert len(notified) == 1


def test_nothing_is_kept_when_the_callers_transaction_rolls_back(engine, notified):
    with Session(engine) as s:
        make(s)
        s.rollback()
    with Session(engine) as s:
        assert rows(s) == 0 and service_requests.by_source(s, "voice:CA1") is None


def test_a_case_number_clash_draws_another_number(engine, notified):
    with Session(engine) as s:
        first = make(s, "sms:SM1", rng=random.Random(99))
        second = make(s, "sms:SM2", rng=random.Random(99))    # same seed: same first draw
        s.commit()
        assert first.case_number != second.case_number and rows(s) == 2
        assert second.case_number == services.new_case_number(_second_draw(99))


def _second_draw(seed):
    rng = random.Random(seed)
    services.new_case_number(rng)
    return rng


def test_a_crowded_space_moves_to_nine_digits(engine, notified, monkeypatch):
    with Session(engine) as s:
        taken = make(s, "k1").case_number
        real = services.new_case_number
        # Every 7-digit draw is the number already taken: as if the seven-digit space were full.
        monkeypatch.setattr(service_requests, "new_case_number",
                            lambda rng, length=7: taken if length == 7 else real(rng, length))
        request = make(s, "k2")
        assert len(request.case_number) == 9 and services.is_case_number(request.case_number)
        assert rows(s) == 2


def test_status_changes_keep_notes_and_who_made_them(engine, notified):
    with Session(engine) as s:
        request = make(s, now=T0)
        s.commit()
    with Session(engine) as s:
        acked = service_requests.set_status(s, request.case_number, "acknowledged", "crew booked for Tuesday",
                                            "ana", now=T0 + timedelta(hours=1))
        closed = service_requests.set_status(s, request.case_number, "closed", "filled", "bo",
                                             now=T0 + timedelta(hours=30))
        s.commit()
    assert acked.status == "acknowledged" and acked.status_notes == "crew booked for Tuesday"
    assert closed.status == "closed" and closed.status_notes == "filled"
    assert closed.created_at == T0 and closed.updated_at == T0 + timedelta(hours=30)
    with Session(engine) as s:
        history = service_requests.history(s, request.case_number)
        assert [(c.status, c.note, c.by) for c in history] == [
            ("open", "received by voice", "voice"), ("acknowledged", "crew booked for Tuesday", "ana"),
            ("closed", "filled", "bo")]
        with pytest.raises(service_requests.RequestError, match="status must be one of"):
            service_requests.set_status(s, request.case_number, "done", "", "ana")
        with pytest.raises(service_requests.RequestError, match="no service request"):
            service_requests.set_status(s, "1234567", "closed", "", "ana")


def test_search_filters_by_status_service_dates_and_case(engine, notified):
    with Session(engine) as s:
        made = [make(s, f"k{n}", service=POTHOLE if n % 2 else GRAFFITI, now=T0 + timedelta(days=n))
                for n in range(6)]
        service_requests.set_status(s, made[1].case_number, "closed", "done", "ana")
        s.commit()
    with Session(engine) as s:
        every = service_requests.search(s)
        assert [r.source_key for r in every] == [f"k{n}" for n in reversed(range(6))]   # newest first
        assert {r.source_key for r in service_requests.search(s, status="closed")} == {"k1"}
        assert {r.source_key for r in service_requests.search(s, status=["open", "acknowledged"])} == \
            {"k0", "k2", "k3", "k4", "k5"}
        assert {r.source_key for r in service_requests.search(s, service_code="graffiti")} == {"k0", "k2", "k4"}
        window = service_requests.search(s, start=T0 + timedelta(days=2), end=T0 + timedelta(days=4))
        assert [r.source_key for r in window] == ["k4", "k3", "k2"]
        assert [r.source_key for r in service_requests.search(s, limit=2)] == ["k5", "k4"]
        assert [r.source_key for r in service_requests.search(s, limit=2, offset=2)] == ["k3", "k2"]
        cases = [made[0].case_number, made[3].case_number]
        assert {r.source_key for r in service_requests.search(s, case_numbers=cases)} == {"k0", "k3"}
        assert service_requests.count(s, service_code="pothole") == 3


@pytest.mark.parametrize("change, message", [
    ({"channel": "fax"}, "channel must be one of voice, sms, open311"),
    ({"lat": 91.0}, "lat must be between -90 and 90"),
    ({"long": "east"}, "long must be a number"),
    ({"source_key": " "}, "source_key is required"),
    ({"description": "x" * 4001}, "description is longer than 4000 characters"),
])
def test_bad_requests_are_refused_with_the_reason(engine, notified, change, message):
    with Session(engine) as s:
        with pytest.raises(service_requests.RequestError, match=message):
            make(s, **change)
    assert notified == []


def test_the_departments_targets_get_one_outbox_row_each_once(engine):
    """The real wiring: create → ivr.outbox.notify_department → rows in the outbox, in the same transaction."""
    from dataclasses import replace

    from ivr.outbox import notify_department
    from ivr.routing.rules import NotifyTarget
    from ivr.store import outbox

    assert service_requests.notify_department is notify_department
    targets = (NotifyTarget("email", "roads@city.example.gov"),
               NotifyTarget("webhook", "https://crm.example.gov/hooks", secret_env="IVR_ROADS_SECRET"))
    roads = replace(RULES.departments["roads"], notify=targets)
    rules = replace(RULES, departments={**RULES.departments, "roads": roads})
    with Session(engine) as s:
        request = make(s, rules=rules)
        make(s, description="a retry", rules=rules)
        s.commit()
    with Session(engine) as s:
        queued = outbox.search(s)
        assert sorted((row.kind, row.target) for row in queued) == [
            ("email", "roads@city.example.gov"), ("webhook", "https://crm.example.gov/hooks")]
        assert all(request.case_number in row.key for row in queued)
        webhook = next(row for row in queued if row.kind == "webhook")
        assert webhook.payload["body"]["case_number"] == request.case_number


def test_a_rolled_back_request_notifies_nobody(engine):
    from dataclasses import replace

    from ivr.routing.rules import NotifyTarget
    from ivr.store import outbox

    roads = replace(RULES.departments["roads"], notify=(NotifyTarget("email", "roads@city.example.gov"),))
    rules = replace(RULES, departments={**RULES.departments, "roads": roads})
    with Session(engine) as s:
        make(s, rules=rules)
        s.rollback()
    with Session(engine) as s:
        assert outbox.search(s) == []


# ---- ivr requests ---------------------------------------------------------------------------------


def test_cli_lists_shows_acknowledges_and_closes_with_numbers_masked(engine, db_url, notified):
    from ivr.cli import cli

    with Session(engine) as s:
        request = make(s, contact_email="jane@example.org")
        s.commit()
    case = request.case_number
    runner = CliRunner()
    listed = runner.invoke(cli, ["requests", "list", "--url", db_url])
    assert listed.exit_code == 0, listed.output
    assert case in listed.stdout and MASKED in listed.stdout and PHONE not in listed.stdout
    shown = runner.invoke(cli, ["requests", "show", case, "--url", db_url])
    assert "12 Main Street" in shown.stdout and "j***@example.org" in shown.stdout
    assert PHONE not in shown.stdout and "jane@" not in shown.stdout
    full = runner.invoke(cli, ["requests", "show", case, "--url", db_url, "--show-numbers"])
    assert PHONE in full.stdout and "jane@example.org" in full.stdout
    acked = runner.invoke(cli, ["requests", "ack", f"{case[:3]}-{case[3:]}", "--note", "on it", "--by", "ana",
                                "--url", db_url])
    assert acked.exit_code == 0 and f"case {case}: acknowledged — on it" in acked.stdout
    closed = runner.invoke(cli, ["requests", "close", case, "--note", "filled", "--url", db_url])
    assert closed.exit_code == 0, closed.output
    listed = runner.invoke(cli, ["requests", "list", "--status", "closed", "--json", "--url", db_url])
    import json
    document = json.loads(listed.stdout.splitlines()[0])
    assert (document["case_number"], document["status"], document["status_notes"]) == (case, "closed", "filled")
    assert document["contact_phone"] == MASKED
    shown = runner.invoke(cli, ["requests", "show", case, "--url", db_url])
    assert "acknowledged ana" in " ".join(shown.stdout.split()) and "closed cli:" in " ".join(shown.stdout.split())
    from ivr.store import outbox
    with Session(engine) as s:          # the citizen agreed to texts: one per change, in the outbox
        texts = sorted(outbox.search(s, kind="sms"), key=lambda row: row.id)
    assert [(row.target, row.payload["purpose"]) for row in texts] == [
        (PHONE, "status_acknowledged"), (PHONE, "status_closed")]
    assert case in texts[1].payload["body"] and "filled" in texts[1].payload["body"]
    quiet = runner.invoke(cli, ["requests", "ack", case, "--no-text", "--url", db_url])
    assert quiet.exit_code == 0 and "text" not in quiet.stdout
    missing = runner.invoke(cli, ["requests", "show", "1111111", "--url", db_url])
    assert missing.exit_code == 1 and "no service request" in missing.output
    assert runner.invoke(cli, ["requests", "list", "--status", "open", "--url", db_url]).stdout.strip() == \
        "no service requests"


def test_retention_forgets_the_contact_of_old_closed_requests_only(engine, notified):
    from ivr.store import retention

    with Session(engine) as s:
        closed = make(s, "k-closed", contact_email="jane@example.org", now=T0)
        service_requests.set_status(s, closed.case_number, "closed", "filled", "ana", now=T0 + timedelta(hours=12))
        still_open = make(s, "k-open", now=T0)
        recent = make(s, "k-recent", now=T0 + timedelta(days=40))
        service_requests.set_status(s, recent.case_number, "closed", "done", "ana", now=T0 + timedelta(days=40))
        s.commit()
    cutoffs = retention.Cutoffs.from_days(T0 + timedelta(days=31), numbers=30)
    with Session(engine) as s:
        assert retention.count(s, cutoffs)["numbers"] == 1
        assert retention.prune(s, cutoffs, "salt")["numbers"] == 1
        assert retention.prune(s, cutoffs, "salt")["numbers"] == 0       # idempotent
        forgotten = service_requests.by_case(s, closed.case_number)
        assert forgotten.contact_phone == retention.hash_number(PHONE, "salt") and forgotten.contact_email is None
        assert forgotten.updated_at == T0 + timedelta(hours=12) and forgotten.description == "a huge pothole"
        assert service_requests.by_case(s, still_open.case_number).contact_phone == PHONE
        assert service_requests.by_case(s, recent.case_number).contact_phone == PHONE


def test_text_consent_is_recorded_after_the_request_is_made(engine, notified):
    with Session(engine) as s:
        request = make(s, text_consent=False, now=T0)
        assert service_requests.set_text_consent(s, request.case_number, True) is True
        assert service_requests.set_text_consent(s, "1234567", True) is False
        s.commit()
    with Session(engine) as s:
        after = service_requests.by_case(s, request.case_number)
        assert after.text_consent is True and after.updated_at == T0
        assert len(service_requests.history(s, request.case_number)) == 1


def test_two_transactions_making_the_same_request_at_once_make_one(engine, notified):
    """A retry that arrives while the first attempt's transaction is still open (another worker)."""
    import threading

    first = Session(engine)
    made = make(first, "sms:SMrace")
    result = {}

    def second():
        with Session(engine) as s:
            result["request"] = make(s, "sms:SMrace", description="the retry")
            s.commit()

    racer = threading.Thread(target=second)
    racer.start()
    racer.join(0.5)                      # it waits for the first transaction (unique source_key)
    first.commit()
    first.close()
    racer.join(30)
    assert not racer.is_alive()
    assert result["request"] == made
    with Session(engine) as s:
        assert rows(s) == 1
    assert len(notified) == 1


def test_citizens_are_texted_about_acknowledged_and_closed_requests_only_with_consent(engine, notified):
    from ivr.service_updates import tell_citizen
    from ivr.store import outbox

    prompts = RULES_PATH.parent / "prompts"
    with Session(engine) as s:
        spanish = make(s, "sms:es", language="es")
        silent = make(s, "voice:no", text_consent=False)
        assert tell_citizen(s, spanish, RULES, prompts) is False            # open: nothing to tell
        closed = service_requests.set_status(s, spanish.case_number, "closed", "bache tapado", "ana")
        assert tell_citizen(s, closed, RULES, prompts) is True
        assert tell_citizen(s, closed, RULES, prompts) is False             # the same change: once
        no_consent = service_requests.set_status(s, silent.case_number, "closed", "", "ana")
        assert tell_citizen(s, no_consent, RULES, prompts) is False
        s.commit()
        (text,) = outbox.search(s, kind="sms")
    assert text.target == PHONE and spanish.case_number in text.payload["body"]
    assert "Bache" in text.payload["body"] and "bache tapado" in text.payload["body"]
