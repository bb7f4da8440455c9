"""Open311 GeoReport v2 (/open311/v2), read as a client would: responses parsed with xml.etree and json.

Field lists are the spec's (wiki.open311.org/GeoReport_v2). Runs on SQLite and PostgreSQL.
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner

from conftest import RULES_PATH

from ivr.routing import services
from ivr.routing.load import load_rules

pytestmark = pytest.mark.db

SERVICE_FIELDS = ["service_code", "service_name", "description", "metadata", "type", "keywords", "group"]
REQUEST_FIELDS = ["service_request_id", "status", "status_notes", "service_name", "service_code", "description",
                  "agency_responsible", "service_notice", "requested_datetime", "updated_datetime",
                  "expected_datetime", "address", "address_id", "zipcode", "lat", "long", "media_url"]
PHONE = "+13125550177"
RULES = load_rules(RULES_PATH)


@pytest.fixture
def app_config(app_config, db_url, tmp_path):
    rules = tmp_path / "routing_rules.yaml"
    # The roads desk is notified by e-mail: a POST must reach the outbox like any other channel.
    rules.write_text(RULES_PATH.read_text().replace(
        '  roads:\n    name: {en: Streets and Roads, es: Calles y Carreteras}\n',
        '  roads:\n    name: {en: Streets and Roads, es: Calles y Carreteras}\n'
        '    notify:\n      - email: roads-requests@city.example.gov\n', 1))
    app_config.update(IVR_DATABASE_URL=db_url, IVR_RULES_PATH=str(rules))
    return app_config


@pytest.fixture
def key(app, db_url):
    result = CliRunner().invoke(_cli(), ["open311", "keys", "add", "crm", "--url", db_url])
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def _cli():
    from ivr.cli import cli

    return cli


def xml_of(response) -> ET.Element:
    assert response.content_type == "text/xml; charset=utf-8"
    assert response.data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    return ET.fromstring(response.data)


def json_of(response):
    assert response.content_type == "application/json; charset=utf-8"
    return json.loads(response.data.decode("utf-8"))


def xml_errors(response) -> list[tuple[int, str]]:
    root = xml_of(response)
    assert root.tag == "errors"
    return [(int(e.findtext("code")), e.findtext("description")) for e in root.findall("error")]


def post(client, key=None, fmt="json", headers=None, **fields):
    form = {"service_code": "pothole", "lat": "41.8781", "long": "-87.6298",
            "address_string": "12 Main Street, Springfield, IL 62701", "description": "deep hole by the bus stop",
            **fields}
    if key is not None:
        form["api_key"] = key
    return client.post(f"/open311/v2/requests.{fmt}", data={k: v for k, v in form.items() if v is not None},
                       headers=headers or {})


def stored(app):
    from ivr.store import db, service_requests

    with app.app_context():
        return service_requests.search(db.session())


# ---- services ---------------------------------------------------------------------------------------

def test_services_in_xml_and_json_list_every_service_with_the_specs_fields(client):
    expected = services.all_services(RULES)
    root = xml_of(client.get("/open311/v2/services.xml"))
    assert root.tag == "services"
    entries = root.findall("service")
    assert [e.findtext("service_code") for e in entries] == [s.code for s in expected]
    assert all([child.tag for child in e] == SERVICE_FIELDS for e in entries)
    pothole = next(e for e in entries if e.findtext("service_code") == "pothole")
    assert (pothole.findtext("service_name"), pothole.findtext("metadata"), pothole.findtext("type"),
            pothole.findtext("group")) == ("Pothole", "false", "realtime", "Streets and Roads")
    assert "crater" in pothole.findtext("keywords").split(", ")
    listed = json_of(client.get("/open311/v2/services.json"))
    assert [list(s) for s in listed] == [SERVICE_FIELDS] * len(expected)
    assert listed[0]["metadata"] is False and [s["service_code"] for s in listed] == [s.code for s in expected]
    assert "water-bill" not in {s["service_code"] for s in listed}


def test_a_service_definition_and_an_unknown_service(client):
    root = xml_of(client.get("/open311/v2/services/streetlight-out.xml"))
    assert root.tag == "service_definition" and root.findtext("service_code") == "streetlight-out"
    assert root.find("attributes") is not None and list(root.find("attributes")) == []
    assert json_of(client.get("/open311/v2/services/pothole.json")) == {"service_code": "pothole", "attributes": []}
    missing = client.get("/open311/v2/services/nothing.xml")
    assert missing.status_code == 404 and xml_errors(missing)[0][0] == 404
    assert json_of(client.get("/open311/v2/services/nothing.json"))[0]["code"] == 404


def test_discovery_points_at_the_v2_endpoint(client):
    found = json_of(client.get("/open311/discovery.json"))
    endpoint = found["endpoints"][0]
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["url"].endswith("/open311/v2") and "text/xml" in endpoint["formats"]
    root = xml_of(client.get("/open311/discovery.xml"))
    assert [f.text for f in root.find("endpoints").find("endpoint").find("formats")] == ["text/xml", "application/json"]


# ---- POST requests: keys ----------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["xml", "json"])
def test_a_missing_or_forged_key_is_a_403_in_the_specs_format_and_nothing_is_stored(app, client, key, fmt):
    for given in (None, "", "ivr_forged-key", key + "x"):
        response = post(client, given, fmt=fmt)
        assert response.status_code == 403
        if fmt == "xml":
            (code, description), = xml_errors(response)
        else:
            (entry,) = json_of(response)
            code, description = entry["code"], entry["description"]
        assert code == 403 and "api_key" in description
    assert stored(app) == []


def test_an_api_token_without_the_open311_scope_or_a_revoked_key_cannot_post(app, client, key, db_url):
    runner = CliRunner()
    reader = runner.invoke(_cli(), ["api", "tokens", "add", "reports", "--url", db_url]).stdout.strip()
    assert post(client, reader).status_code == 403
    assert runner.invoke(_cli(), ["open311", "keys", "revoke", "crm", "--url", db_url]).exit_code == 0
    assert post(client, key).status_code == 403
    assert stored(app) == []
    listed = runner.invoke(_cli(), ["open311", "keys", "list", "--url", db_url]).stdout
    assert "crm" in listed and "revoked" in listed and "reports" not in listed
    assert key not in listed


# ---- POST requests: creating ------------------------------------------------------------------------

def test_a_post_creates_a_request_that_reads_back_without_contacts(app, client, key):
    response = post(client, key, fmt="xml", phone=PHONE, email="jane@example.org", first_name="Jane",
                    description=f"deep hole, call me at {PHONE[2:5]}-{PHONE[5:8]}-{PHONE[8:]} or jane@example.org")
    assert response.status_code == 201, response.data
    root = xml_of(response)
    (made,) = root.findall("request")
    case = made.findtext("service_request_id")
    assert services.is_case_number(case)
    assert case in made.findtext("service_notice") and "Streets and Roads" in made.findtext("service_notice")
    assert made.find("account_id") is not None and made.findtext("account_id") == ""

    (record,) = stored(app)
    assert (record.channel, record.contact_phone, record.contact_email, record.service_code, record.department) == \
        ("open311", PHONE, "jane@example.org", "pothole", "roads")

    for fmt in ("json", "xml"):
        body = client.get(f"/open311/v2/requests/{case}.{fmt}")
        assert body.status_code == 200
        text = body.data.decode("utf-8")
        assert PHONE not in text and PHONE[2:] not in text and "555-0177" not in text and "jane@" not in text
    (document,) = json_of(client.get(f"/open311/v2/requests/{case}.json"))
    assert list(document) == REQUEST_FIELDS
    assert (document["service_request_id"], document["status"], document["service_code"], document["service_name"],
            document["agency_responsible"], document["zipcode"]) == \
        (case, "open", "pothole", "Pothole", "Streets and Roads", "62701")
    assert document["lat"] == pytest.approx(41.8781) and document["long"] == pytest.approx(-87.6298)
    assert "[number removed]" in document["description"] and "[e-mail removed]" in document["description"]
    requested = datetime.fromisoformat(document["requested_datetime"].replace("Z", "+00:00"))
    assert requested.tzinfo is not None and abs(requested - datetime.now(timezone.utc)) < timedelta(hours=1)
    (entry,) = xml_of(client.get(f"/open311/v2/requests/{case}.xml")).findall("request")
    assert [child.tag for child in entry] == REQUEST_FIELDS


def test_the_department_is_notified_through_the_outbox(app, client, key):
    from ivr.store import db, outbox

    case = json_of(post(client, key))[0]["service_request_id"]
    with app.app_context():
        (row,) = outbox.search(db.session())
    assert (row.kind, row.target) == ("email", "roads-requests@city.example.gov") and case in row.key


def test_a_retried_post_is_one_request(app, client, key):
    first = json_of(post(client, key))[0]["service_request_id"]
    again = post(client, key)
    assert again.status_code == 200 and json_of(again)[0]["service_request_id"] == first
    other = post(client, key, description="another hole, further down")
    assert other.status_code == 201 and json_of(other)[0]["service_request_id"] != first
    keyed = [post(client, key, headers={"Idempotency-Key": "abc-1"}, description=d) for d in ("one", "one, again")]
    assert json_of(keyed[0])[0]["service_request_id"] == json_of(keyed[1])[0]["service_request_id"]
    assert len(stored(app)) == 3


@pytest.mark.parametrize("fields, status, words", [
    ({"service_code": None}, 400, "service_code is required"),
    ({"service_code": "unicorn"}, 404, "service_code 'unicorn' was not found"),
    ({"lat": None, "long": None, "address_string": None}, 400, "a location is required"),
    ({"long": None}, 400, "lat and long must be sent together"),
    ({"lat": "north"}, 400, "is not a number"),
    ({"lat": "95"}, 400, "outside"),
    ({"email": "not-an-address"}, 400, "is not an e-mail address"),
    ({"description": "x" * 4001}, 400, "longer than 4000"),
    ({"media_url": "javascript:alert(1)"}, 400, "media_url must be an http(s) URL"),
    ({"language": "fr"}, 400, "language must be one of en, es"),
])
def test_bad_posts_get_clear_open311_errors(app, client, key, fields, status, words):
    response = post(client, key, fmt="xml", **fields)
    assert response.status_code == status
    (code, description), = xml_errors(response)
    assert code == status and words in description
    assert stored(app) == []


def test_characters_xml_cannot_carry_do_not_break_the_xml(client, key):
    case = json_of(post(client, key, description="bell\x07 and form feed\x0c; <b>&amp;</b>"))[0]["service_request_id"]
    entry = xml_of(client.get(f"/open311/v2/requests/{case}.xml")).find("request")
    assert entry.findtext("description") == "bell and form feed; <b>&amp;</b>"


def test_address_only_and_utf8_text_round_trip(client, key):
    made = post(client, key, lat=None, long=None, address_string="Calle Ñandú 5", description="señal rota — ¡peligro!",
                service_code="traffic-sign", language="es")
    case = json_of(made)[0]["service_request_id"]
    (document,) = json_of(client.get(f"/open311/v2/requests/{case}.json"))
    assert (document["address"], document["description"], document["lat"]) == ("Calle Ñandú 5", "señal rota — ¡peligro!", None)
    entry = xml_of(client.get(f"/open311/v2/requests/{case}.xml")).find("request")
    assert entry.findtext("description") == "señal rota — ¡peligro!" and entry.findtext("lat") == ""


# ---- GET requests -----------------------------------------------------------------------------------

@pytest.fixture
def history(app):
    """Requests made over the last 120 days, one of them closed and one acknowledged."""
    from ivr.store import db, service_requests

    now = datetime.now(timezone.utc)
    made = {}
    with app.app_context():
        s = db.session()
        for name, days, intent in (("old", 100, "pothole"), ("month", 30, "graffiti"), ("week", 7, "pothole"),
                                   ("today", 0, "streetlight_out")):
            made[name] = service_requests.create(
                s, source_key=f"sms:{name}", channel="sms", service=services.service_for_intent(RULES, intent),
                description=f"reported {name}", address=None, lat=None, long=None, language="en",
                contact_phone=PHONE, contact_email=None, text_consent=True, rules=RULES,
                now=now - timedelta(days=days, minutes=1)).case_number
        service_requests.set_status(s, made["month"], "closed", f"cleaned; call {PHONE} with questions", "ana")
        service_requests.set_status(s, made["week"], "acknowledged", "crew booked", "bo")
        s.commit()
    return made


def ids(response) -> list[str]:
    return [r["service_request_id"] for r in json_of(response)]


def test_by_default_the_last_90_days_newest_first(client, history):
    assert ids(client.get("/open311/v2/requests.json")) == [history["today"], history["week"], history["month"]]
    root = xml_of(client.get("/open311/v2/requests.xml"))
    assert root.tag == "service_requests"
    assert [r.findtext("service_request_id") for r in root.findall("request")] == \
        [history["today"], history["week"], history["month"]]
    assert all([c.tag for c in r] == REQUEST_FIELDS for r in root.findall("request"))


def test_filters_status_service_and_dates(client, history):
    assert ids(client.get("/open311/v2/requests.json?status=closed")) == [history["month"]]
    assert ids(client.get("/open311/v2/requests.json?status=open")) == [history["today"], history["week"]]
    assert ids(client.get("/open311/v2/requests.json?status=open,closed&service_code=pothole,graffiti")) == \
        [history["week"], history["month"]]
    start = (datetime.now(timezone.utc) - timedelta(days=110)).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = (datetime.now(timezone.utc) - timedelta(days=25)).strftime("%Y-%m-%dT%H:%M:%S-06:00")
    assert ids(client.get(f"/open311/v2/requests.json?start_date={start}&end_date={end}")) == \
        [history["month"], history["old"]]
    closed = json_of(client.get("/open311/v2/requests.json?status=closed"))[0]
    assert closed["status_notes"].startswith("cleaned") and PHONE not in json.dumps(closed)
    acknowledged = json_of(client.get(f"/open311/v2/requests/{history['week']}.json"))[0]
    assert (acknowledged["status"], acknowledged["status_notes"]) == ("open", "crew booked")


def test_service_request_ids_override_the_other_filters(client, history):
    wanted = f"{history['old']},{history['today']}"
    assert sorted(ids(client.get(f"/open311/v2/requests.json?service_request_id={wanted}&status=closed"))) == \
        sorted([history["old"], history["today"]])


@pytest.mark.parametrize("query, words", [
    ("start_date=2026-01-01T00:00:00Z&end_date=2026-06-01T00:00:00Z", "more than 90 days"),
    ("start_date=2026-06-01T00:00:00Z&end_date=2026-01-01T00:00:00Z", "end_date is before start_date"),
    ("start_date=2026-01-01T00:00:00", "has no time zone"),
    ("end_date=yesterday", "is not an ISO 8601 date-time"),
    ("status=pending", "status must be open or closed"),
])
def test_bad_queries_are_400s(client, query, words):
    response = client.get(f"/open311/v2/requests.xml?{query}")
    assert response.status_code == 400
    (code, description), = xml_errors(response)
    assert code == 400 and words in description


def test_unknown_request_jurisdiction_and_resource_are_404s(app, client, history):
    assert client.get("/open311/v2/requests/1234567.json").status_code == 404
    assert xml_errors(client.get("/open311/v2/requests/nothing.xml"))[0][0] == 404
    assert xml_errors(client.get("/open311/v2/tokens/abc.xml"))[0][0] == 404
    app.config["IVR_OPEN311_JURISDICTION"] = "city.example.gov"
    assert client.get("/open311/v2/services.xml?jurisdiction_id=city.example.gov").status_code == 200
    assert client.get("/open311/v2/services.xml").status_code == 200     # optional for one city
    wrong = client.get("/open311/v2/services.json?jurisdiction_id=elsewhere.gov")
    assert wrong.status_code == 404 and "elsewhere.gov" in json_of(wrong)[0]["description"]


def test_no_public_read_ever_contains_a_citizens_number(client, history, key):
    post(client, key, phone=PHONE, email="jane@example.org")
    texts = [client.get(url).data.decode("utf-8") for url in
             ("/open311/v2/requests.json", "/open311/v2/requests.xml", "/open311/v2/requests.json?status=closed",
              f"/open311/v2/requests.xml?service_request_id={','.join(history.values())}")]
    for text in texts:
        assert PHONE not in text and PHONE[2:] not in text and "jane@example.org" not in text
