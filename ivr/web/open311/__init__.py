"""Open311 GeoReport v2, served by the app: the city's existing tools read and create service requests.

    GET  /open311/discovery.{xml,json}             Service Discovery
    GET  /open311/v2/services.{xml,json}           the services (intents with a service_code)
    GET  /open311/v2/services/{code}.{xml,json}    a service's definition (no extra attributes)
    GET  /open311/v2/requests.{xml,json}           requests: service_request_id, service_code, status,
                                                   start_date/end_date (at most 90 days; default the last 90)
    GET  /open311/v2/requests/{id}.{xml,json}      one request (its case number is its id)
    POST /open311/v2/requests.{xml,json}           a new request: needs an api_key (`ivr open311 keys add NAME`)

Reads are public, as the spec has them, so they never carry the citizen's phone or e-mail
(documents.py). A POST files the request through the same store call as the phone and SMS
channels (channel "open311"), so its department is notified the same way. Every error is in the
spec's format and status: 403 for a missing or wrong api_key, 404 for what does not exist, 400
for anything else the client must fix.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import urllib.parse
from datetime import datetime, timedelta, timezone
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request
from sqlalchemy.exc import SQLAlchemyError

from ivr import rules_source
from ivr.routing.services import all_services, service_by_code
from ivr.store import audit, db, service_requests, tokens
from ivr.store.models import utcnow
from ivr.web.open311 import documents
from ivr.web.open311.formats import FORMATS, error, respond

log = logging.getLogger(__name__)
bp = Blueprint("open311", __name__, url_prefix="/open311")

FMT = "<any(xml, json):fmt>"
MAX_DAYS = 90            # the spec: a GET requests range may not span more than 90 days
MAX_RESULTS = 1000       # … nor return more than 1000 requests
#: Identical POSTs from one key within this long are one request (a client's retry).
RETRY_WINDOW = timedelta(hours=24)
_EMAIL = re.compile(r"^[^@\s<>,;]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+$")


class Refused(Exception):
    """A request the spec says to refuse: HTTP status and the description for the client."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


def _fmt_of_path() -> str:
    return "json" if request.path.endswith(".json") else "xml"


@bp.errorhandler(Refused)
def refused(exc: Refused) -> Response:
    return error(_fmt_of_path(), exc.status, exc.description)


@bp.errorhandler(SQLAlchemyError)
def database_unavailable(exc: SQLAlchemyError) -> Response:
    log.error("Open311: database error %s", type(exc).__name__)
    return error(_fmt_of_path(), 503, "the service request database is unavailable; try again shortly")


def _check_jurisdiction() -> None:
    """jurisdiction_id is optional for a one-city endpoint; a wrong one is still a 404."""
    ours = current_app.config.get("IVR_OPEN311_JURISDICTION") or ""
    given = (request.values.get("jurisdiction_id") or "").strip()
    if ours and given and given != ours:
        raise Refused(404, f"jurisdiction_id '{given}' was not found; this endpoint serves '{ours}'")


@bp.get(f"/discovery.{FMT}")
def discovery(fmt: str) -> Response:
    base = request.host_url.rstrip("/") + bp.url_prefix + "/v2"
    contact = current_app.config.get("IVR_OPEN311_CONTACT") or "the city's 311 service"
    return respond(fmt, "discovery", documents.discovery(base, contact, _changeset()))


def _changeset() -> datetime:
    """When the services last changed: the rules file's modification time."""
    try:
        return datetime.fromtimestamp(os.stat(rules_source.current_rules().source).st_mtime, timezone.utc)
    except OSError:
        return utcnow()


@bp.get(f"/v2/services.{FMT}")
def services(fmt: str) -> Response:
    _check_jurisdiction()
    rules = rules_source.current_rules()
    return respond(fmt, "services", [documents.service(rules, s) for s in all_services(rules)])


@bp.get(f"/v2/services/<code>.{FMT}")
def service_definition(code: str, fmt: str) -> Response:
    _check_jurisdiction()
    found = service_by_code(rules_source.current_rules(), code)
    if found is None:
        raise Refused(404, f"service_code '{code}' was not found (GET services.{fmt} lists them)")
    return respond(fmt, "service_definition", documents.definition(found))


def _time(name: str) -> datetime | None:
    raw = (request.args.get(name) or "").strip()
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise Refused(400, f"{name} '{raw}' is not an ISO 8601 date-time, e.g. 2026-12-01T00:00:00Z") from None
    if value.tzinfo is None:
        raise Refused(400, f"{name} '{raw}' has no time zone; add Z (UTC) or an offset such as -06:00")
    return value


def _window() -> tuple[datetime, datetime]:
    """start_date/end_date: at most 90 days; a missing end is 90 days after the start (or now)."""
    start, end = _time("start_date"), _time("end_date")
    now = utcnow()
    if start is None and end is None:
        return now - timedelta(days=MAX_DAYS), now
    if start is None:
        return end - timedelta(days=MAX_DAYS), end  # type: ignore[operator]
    if end is None:
        return start, min(now, start + timedelta(days=MAX_DAYS))
    if end < start:
        raise Refused(400, "end_date is before start_date")
    if end - start > timedelta(days=MAX_DAYS):
        raise Refused(400, f"start_date to end_date spans more than {MAX_DAYS} days; ask for a shorter range")
    return start, end


def _listed(name: str) -> list[str] | None:
    """A comma-delimited argument that may also be repeated ("status=open,closed" / "status=open&status=closed")."""
    values = [v.strip() for raw in request.args.getlist(name) for v in raw.split(",") if v.strip()]
    return values or None


@bp.get(f"/v2/requests.{FMT}")
def list_requests(fmt: str) -> Response:
    _check_jurisdiction()
    rules = rules_source.current_rules()
    s = db.session()
    ids = _listed("service_request_id")
    if ids is not None:                     # the spec: this overrides every other argument
        found = service_requests.search(s, case_numbers=ids[:MAX_RESULTS], limit=MAX_RESULTS)
        return respond(fmt, "service_requests", [documents.request(rules, r) for r in found])
    statuses = _listed("status")
    if statuses and any(status not in ("open", "closed") for status in statuses):
        raise Refused(400, "status must be open or closed (comma delimited for both)")
    ours = None if statuses is None else sorted({x for st in statuses for x in
                                                 (("closed",) if st == "closed" else ("open", "acknowledged"))})
    start, end = _window()
    found = service_requests.search(s, status=ours, service_code=_listed("service_code"), start=start, end=end,
                                    limit=MAX_RESULTS)
    return respond(fmt, "service_requests", [documents.request(rules, r) for r in found])


@bp.get(f"/v2/requests/<request_id>.{FMT}")
def get_request(request_id: str, fmt: str) -> Response:
    _check_jurisdiction()
    found = service_requests.by_case(db.session(), request_id)
    if found is None:
        raise Refused(404, f"service_request_id '{request_id}' was not found")
    return respond(fmt, "service_requests", [documents.request(rules_source.current_rules(), found)])


# ---- POST requests ---------------------------------------------------------------------------------

def _client() -> tokens.ApiToken:
    """The api_key's live token with the open311:post scope, else 403 (nothing else is looked at)."""
    given = (request.form.get("api_key") or request.args.get("api_key") or "").strip()
    if not given:
        raise Refused(403, "api_key is missing: ask the city for one (`ivr open311 keys add NAME`)")
    found = tokens.find(db.session(), given)
    if found is None or tokens.SCOPE_OPEN311 not in found.scope_set:
        log.warning("Open311: POST refused, invalid api_key")
        raise Refused(403, "invalid api_key received; can't proceed with create_request")
    return found


def _number(name: str, bound: float) -> float | None:
    raw = (request.form.get(name) or "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise Refused(400, f"{name} '{raw}' is not a number (WGS84 decimal degrees)") from None
    if not -bound <= value <= bound:
        raise Refused(400, f"{name} {raw} is outside -{bound:g}..{bound:g}")
    return value


def _optional(name: str, limit: int) -> str | None:
    value = (request.form.get(name) or "").strip()
    if len(value) > limit:
        raise Refused(400, f"{name} is longer than {limit} characters")
    return value or None


def _location() -> tuple[str | None, float | None, float | None]:
    lat, long = _number("lat", 90), _number("long", 180)
    if (lat is None) != (long is None):
        raise Refused(400, "lat and long must be sent together")
    address = _optional("address_string", service_requests.MAX_ADDRESS)
    address_id = _optional("address_id", 100)
    if address is None and address_id is not None:
        address = f"address id {address_id}"        # kept as text: the line has no address register
    if address is None and lat is None:
        raise Refused(400, "a location is required: lat and long, or address_string, or address_id")
    return address, lat, long


def _contacts() -> tuple[str | None, str | None]:
    email = _optional("email", 255)
    if email is not None and not _EMAIL.match(email):
        raise Refused(400, f"email '{email}' is not an e-mail address")
    phone = _optional("phone", 64)
    if phone is not None and sum(c.isdigit() for c in phone) < 3:
        raise Refused(400, "phone is not a phone number")
    return phone, email


def _media_url() -> str | None:
    url = _optional("media_url", 2000)
    if url is not None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise Refused(400, "media_url must be an http(s) URL")
    return url


def _retry_keys(client: tokens.ApiToken, now: datetime) -> tuple[str, list[str]]:
    """(this POST's source key, the keys an earlier identical POST may have used).

    A client's explicit Idempotency-Key header wins. Otherwise identical fields from the same
    api_key within a day are a retry: the key holds the day, and yesterday's is checked too.
    """
    explicit = (request.headers.get("Idempotency-Key") or "").strip()
    if explicit:
        key = f"open311:{client.id}:key:{hashlib.sha256(explicit.encode()).hexdigest()[:40]}"
        return key, [key]
    fields = sorted((k, v) for k, values in request.form.lists() if k != "api_key" for v in values)
    digest = hashlib.sha256(repr(fields).encode("utf-8")).hexdigest()[:40]
    day = now.date()
    keys = [f"open311:{client.id}:{digest}:{d.isoformat()}" for d in (day, day - timedelta(days=1))]
    return keys[0], keys


@bp.post(f"/v2/requests.{FMT}")
def create_request(fmt: str) -> Response:
    _check_jurisdiction()
    client = _client()                      # before anything else: no key, nothing is looked at
    rules = rules_source.current_rules()
    code = (request.form.get("service_code") or "").strip()
    if not code:
        raise Refused(400, "service_code is required (GET services lists them)")
    found = service_by_code(rules, code)
    if found is None:
        raise Refused(404, f"service_code '{code}' was not found")
    address, lat, long = _location()
    description = _optional("description", service_requests.MAX_DESCRIPTION) or ""
    phone, email = _contacts()
    media_url = _media_url()
    language = (request.form.get("language") or rules.default_language).strip()
    if language not in rules.languages:
        raise Refused(400, f"language must be one of {', '.join(rules.languages)}")
    s = db.session()
    now = utcnow()
    key, earlier = _retry_keys(client, now)
    for candidate in earlier:
        before = service_requests.by_source(s, candidate)
        if before is not None and now - before.created_at <= RETRY_WINDOW:
            return respond(fmt, "service_requests", [_created(rules, before)], status=200)
    try:
        made = service_requests.create(
            s, source_key=key, channel="open311", service=found, description=description, address=address,
            lat=lat, long=long, language=language, contact_phone=phone, contact_email=email, text_consent=False,
            media_url=media_url, rules=rules, now=now)
    except service_requests.RequestError as exc:
        raise Refused(400, str(exc)) from None
    client.last_used_at = now
    audit.record(s, f"open311:{client.name}", "open311.requests.create", made.case_number,
                 {"service_code": found.code})
    s.commit()
    log.info("Open311: request %s (%s) from key %s", made.case_number, found.code, client.name)
    return respond(fmt, "service_requests", [_created(rules, made)], status=201)


def _created(rules: Any, made: service_requests.ServiceRequest) -> dict[str, Any]:
    return {"service_request_id": made.case_number, "service_notice": documents.notice(rules, made),
            "account_id": None}


@bp.route("/<path:rest>", methods=["GET", "POST"])
def unknown(rest: str) -> Response:
    """Anything else under /open311 is a 404 in the spec's format (XML unless .json was asked)."""
    return error(_fmt_of_path(), 404, f"no such Open311 resource: /open311/{rest} (formats: {', '.join(FORMATS)})")


def init_app(app: Flask) -> None:
    """Register the Open311 blueprint."""
    app.register_blueprint(bp)
