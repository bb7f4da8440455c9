"""GET /api/calls/<sid> and /api/calls?limit=N: bearer token, 404, limit checks, the record."""
from __future__ import annotations

import pytest
from flask import Flask

from ivr.store import calls, db
from ivr.web import api

pytestmark = pytest.mark.db
TOKEN = "test-api-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def api_app(db_url):
    app = Flask("api-test")
    # The bootstrap token with both scopes: these tests read full records (see test_api_tokens.py).
    app.config.update(IVR_DATABASE_URL=db_url, IVR_API_TOKEN=TOKEN, TESTING=True,
                      IVR_API_TOKEN_SCOPES="calls:read numbers:read")
    db.init_app(app)
    api.init_app(app)
    with app.app_context():
        s = db.session()
        calls.ensure_call(s, "CA100", "+15551234567", "+15550001111")
        calls.add_turn(s, "CA100", "ask", "How can we help?", "streetlight out", None, 0.88,
                       {"top": "streetlight"}, {"action": "transfer", "department": "roads"})
        calls.set_outcome(s, "CA100", "transferred", department="roads")
        calls.ensure_call(s, "CA101", "+15559876543", "+15550001111")
        s.commit()
    yield app
    db.engine(app).dispose()


@pytest.fixture
def api_client(api_app):
    return api_app.test_client()


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN},
    {"Authorization": "Basic dGVzdDp0ZXN0"}, {"Authorization": "Bearer tést"},
])
@pytest.mark.parametrize("path", ["/api/calls/CA100", "/api/calls"])
def test_without_the_token_401_json(api_client, path, headers):
    response = api_client.get(path, headers=headers)
    assert response.status_code == 401
    assert "API token" in response.get_json()["error"]
    assert "+1555" not in response.get_data(as_text=True)


def test_no_configured_token_means_closed(api_app):
    api_app.config["IVR_API_TOKEN"] = ""
    assert api_app.test_client().get("/api/calls", headers={"Authorization": "Bearer "}).status_code == 401


def test_call_record(api_client):
    response = api_client.get("/api/calls/CA100", headers=AUTH)
    assert response.status_code == 200
    record = response.get_json()
    assert (record["sid"], record["from"], record["to"]) == ("CA100", "+15551234567", "+15550001111")
    assert record["outcome"] == "transferred"
    assert record["turns"][0]["heard"] == "streetlight out"
    assert record["decisions"][0]["department"] == "roads"
    assert {"started", "ended", "status", "language", "events", "recordings", "messages"} <= set(record)


def test_unknown_call_404_json(api_client):
    response = api_client.get("/api/calls/CAnope", headers=AUTH)
    assert response.status_code == 404
    assert "CAnope" in response.get_json()["error"]


def test_recent_calls(api_client):
    response = api_client.get("/api/calls?limit=1", headers=AUTH)
    assert response.status_code == 200
    assert [c["sid"] for c in response.get_json()["calls"]] == ["CA101"]
    assert len(api_client.get("/api/calls", headers=AUTH).get_json()["calls"]) == 2


@pytest.mark.parametrize("limit", ["0", "501", "ten", "-1", "1.5", ""])
def test_bad_limit_400_json(api_client, limit):
    response = api_client.get(f"/api/calls?limit={limit}", headers=AUTH)
    assert response.status_code == 400
    assert "limit" in response.get_json()["error"]


def test_database_down_503_json(api_app):
    api_app.extensions["ivr.db.sessionmaker"].configure(bind=db.make_engine(
        "postgresql+psycopg2://nobody@127.0.0.1:1/none"))
    response = api_app.test_client().get("/api/calls/CA100", headers=AUTH)
    assert response.status_code == 503
    assert "unavailable" in response.get_json()["error"]
