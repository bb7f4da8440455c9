"""The SMS channel's store on both backends: texters (STOP/START, language, draft), subscriptions, alerts."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from ivr.store import alerts, db, sms_contacts
from conftest import store_only_app

pytestmark = pytest.mark.db
NOW = datetime(2026, 12, 7, 15, 0, tzinfo=timezone.utc)
PHONE = "+13125550199"


@pytest.fixture
def s(db_url):
    app = store_only_app(db_url, "sms-store-test")
    with app.app_context():
        yield db.session()
    db.engine(app).dispose()


def test_a_stranger_is_not_opted_out_and_has_no_contact(s):
    assert sms_contacts.opted_out(s, PHONE) is False
    assert sms_contacts.contact(s, PHONE) is None
    assert sms_contacts.opted_out(s, "") is False


def test_stop_then_start_is_remembered_with_its_time(s):
    sms_contacts.set_pending(s, PHONE, {"stage": "location", "text": "pothole"}, NOW)
    sms_contacts.opt_out(s, PHONE, NOW)
    s.commit()
    assert sms_contacts.opted_out(s, PHONE)
    stopped = sms_contacts.contact(s, PHONE)
    assert stopped.opted_out and stopped.opted_out_at == NOW and stopped.pending is None
    sms_contacts.opt_in(s, PHONE, NOW + timedelta(minutes=5))
    s.commit()
    assert not sms_contacts.opted_out(s, PHONE)


def test_language_and_draft_round_trip(s):
    sms_contacts.save(s, PHONE, language="es", pending={"stage": "location", "service": "SR-1"}, now=NOW)
    s.commit()
    found = sms_contacts.contact(s, PHONE)
    assert found.language == "es" and found.pending == {"stage": "location", "service": "SR-1"}
    sms_contacts.set_pending(s, PHONE, None, NOW)
    sms_contacts.set_language(s, PHONE, "en", NOW)
    s.commit()
    again = sms_contacts.contact(s, PHONE)
    assert again.language == "en" and not again.pending


def test_subscribe_is_idempotent_and_updates_the_language(s):
    assert alerts.subscribe(s, phone=PHONE, topic="water", language="en", channel="sms") is True
    assert alerts.subscribe(s, phone=PHONE, topic="water", language="es", channel="voice") is False
    alerts.subscribe(s, phone="+13125550100", topic="water", language="en", channel="voice")
    alerts.subscribe(s, phone=PHONE, topic="parks", language="es", channel="sms")
    s.commit()
    assert [(x.phone, x.language) for x in alerts.subscribers(s, "water")] == [(PHONE, "es"), ("+13125550100", "en")]
    assert alerts.topics_of(s, PHONE) == ["parks", "water"]
    assert alerts.subscriber_counts(s) == {"water": 2, "parks": 1}
    assert alerts.unsubscribe(s, phone=PHONE, topic="water") == 1
    assert alerts.unsubscribe(s, phone=PHONE, topic="water") == 0
    assert alerts.unsubscribe(s, phone=PHONE) == 1
    s.commit()
    assert alerts.topics_of(s, PHONE) == []


def test_active_alert_is_found_by_topic_or_intent_until_it_ends(s):
    old = alerts.create_alert(s, topic="water", intents=["no_water"], message={"en": "Old news."},
                              created_by="cli", now=NOW - timedelta(hours=1))
    alert = alerts.create_alert(s, topic="water", intents=["no_water", "water_main_break"],
                                message={"en": "Main break on Elm Street; crews on site.",
                                         "es": "Rotura en la calle Elm; hay equipos trabajando."},
                                created_by="cli", until=NOW + timedelta(hours=2), now=NOW)
    s.commit()
    assert alert.id != old.id and alert.text("es").startswith("Rotura") and alert.text("fr").startswith("Main")
    found = alerts.active_alert_for(s, intent="water_main_break", topic=None, now=NOW + timedelta(minutes=1))
    assert found is not None and found.id == alert.id              # the newest wins
    assert alerts.active_alert_for(s, intent=None, topic="water", now=NOW).id == alert.id
    assert alerts.active_alert_for(s, intent="pothole", topic="roads", now=NOW) is None
    assert alerts.active_alert_for(s, intent=None, topic=None, now=NOW) is None
    assert alerts.active_alert_for(s, intent="water_main_break", topic=None,
                                   now=NOW - timedelta(minutes=1)) is None   # not yet published
    # `until` passes: the older open-ended alert is the one left
    later = alerts.active_alert_for(s, intent="no_water", topic=None, now=NOW + timedelta(hours=3))
    assert later.id == old.id
    alerts.end_alert(s, old.id, by="cli", now=NOW + timedelta(hours=3))
    s.commit()
    assert alerts.active_alert_for(s, intent="no_water", topic=None, now=NOW + timedelta(hours=3)) is None
    assert [a.id for a in alerts.list_alerts(s)] == [alert.id, old.id]


def test_heard_counters_add_up_per_channel(s):
    alert = alerts.create_alert(s, topic="parks", intents=["pools"], message={"en": "Pools closed."},
                                created_by="cli", now=NOW)
    for channel in ("voice", "voice", "sms"):
        alerts.count_alert_heard(s, alert.id, channel)
    alerts.add_recipients(s, alert.id, 3)
    s.commit()
    again = alerts.get_alert(s, alert.id)
    assert again.heard == {"voice": 2, "sms": 1} and again.recipients == 3
    with pytest.raises(ValueError):
        alerts.count_alert_heard(s, alert.id, "fax")


def test_an_alert_needs_a_message_and_a_future_end(s):
    with pytest.raises(ValueError):
        alerts.create_alert(s, topic="parks", intents=[], message={"en": "  "}, created_by="cli", now=NOW)
    with pytest.raises(ValueError):
        alerts.create_alert(s, topic="parks", intents=[], message={"en": "x"}, created_by="cli", now=NOW,
                            until=NOW - timedelta(minutes=1))
