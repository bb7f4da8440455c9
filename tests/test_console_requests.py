"""Service requests in the console: list, a request's page, acknowledge/close with a note (SQLite and PostgreSQL)."""
from __future__ import annotations

import pytest

from conftest import RULES_PATH
from console_helpers import Console, add_users, console_config

from ivr.routing import services
from ivr.routing.load import load_rules
from ivr.store import audit, db, outbox, service_requests

pytestmark = pytest.mark.db

RULES = load_rules(RULES_PATH)
PHONE = "+13125550177"


@pytest.fixture
def app_config(app_config, tmp_path, db_url):
    return {**console_config(app_config, tmp_path), "IVR_DATABASE_URL": db_url}


@pytest.fixture
def app(app):
    add_users(app)
    return app


@pytest.fixture
def cases(app):
    made = {}
    with app.app_context():
        s = db.session()
        for key, intent, channel in (("a", "pothole", "voice"), ("b", "graffiti", "sms"), ("c", "sewer", "open311")):
            made[key] = service_requests.create(
                s, source_key=f"{channel}:{key}", channel=channel, service=services.service_for_intent(RULES, intent),
                description=f"the {intent} on Elm", address="12 Elm Street", lat=None, long=None, language="en",
                contact_phone=PHONE, contact_email="jane@example.org", text_consent=True, rules=RULES).case_number
        service_requests.set_status(s, made["b"], "closed", "painted over", "cli")
        s.commit()
    return made


def test_agents_see_the_list_with_filters_and_masked_contacts(app, cases):
    console = Console(app, "alice")
    page = console.get("/console/requests").get_data(as_text=True)
    assert all(case in page for case in cases.values())
    assert PHONE not in page and "jane@example.org" not in page and "+1******0177" in page
    assert "Service requests" in page
    closed = console.get("/console/requests?status=closed").get_data(as_text=True)
    assert cases["b"] in closed and cases["a"] not in closed
    water = console.get("/console/requests?department=water").get_data(as_text=True)
    assert cases["c"] in water and cases["a"] not in water


def test_a_request_is_acknowledged_then_closed_with_notes(app, cases):
    console = Console(app, "alice")
    url = f"/console/requests/{cases['a']}"
    page = console.get(url).get_data(as_text=True)
    assert "Pothole" in page and "the pothole on Elm" in page and PHONE not in page and "j***@example.org" in page
    response = console.post(f"{url}/status", {"status": "acknowledged", "note": "crew booked"}, page=url)
    assert response.status_code == 302
    response = console.post(f"{url}/status", {"status": "closed", "note": "filled"}, page=url)
    page = console.get(url).get_data(as_text=True)
    assert "closed — filled" in page and "alice: acknowledged — crew booked" in page
    with app.app_context():
        s = db.session()
        assert service_requests.by_case(s, cases["a"]).status == "closed"
        assert [c.by for c in service_requests.history(s, cases["a"])] == ["voice", "alice", "alice"]
        assert [e.action for e in audit.recent(s, 10) if e.action == "console.requests.status"] == \
            ["console.requests.status"] * 2
        texts = sorted(outbox.search(s, kind="sms"), key=lambda row: row.id)
    # The citizen agreed to texts: told when it was acknowledged and when it was closed.
    assert [(row.target, row.payload["purpose"]) for row in texts] == [
        (PHONE, "status_acknowledged"), (PHONE, "status_closed")]
    assert "filled" in texts[1].payload["body"] and cases["a"] in texts[1].payload["body"]


def test_changes_need_csrf_a_known_status_and_a_known_case(app, cases):
    console = Console(app, "alice")
    url = f"/console/requests/{cases['a']}"
    assert console.client.post(f"{url}/status", data={"status": "closed"}).status_code == 400   # no CSRF token
    console.post(f"{url}/status", {"status": "deleted"}, page=url)
    with app.app_context():
        assert service_requests.by_case(db.session(), cases["a"]).status == "open"
    assert console.get("/console/requests/1234567").status_code == 404
    assert console.post("/console/requests/1234567/status", {"status": "closed"}, page=url).status_code == 404


def test_the_pages_need_a_signed_in_agent(client, cases):
    response = client.get("/console/requests")
    assert response.status_code == 302 and "/console/login" in response.headers["Location"]
