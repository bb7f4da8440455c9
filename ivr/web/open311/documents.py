"""What Open311 clients see: services, a service's definition and service requests, as documents.

Public: anyone may read services and requests (the spec's GETs take no key), so a request's
document carries no contact at all, and phone numbers and e-mail addresses a citizen put into
their own description are blanked out (a caller often says "call me back at …").
"""
from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from ivr.routing.rules import Rules
from ivr.routing.services import Service, ServiceRequest, is_case_number

SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
#: A run of 7 or more digits, possibly split by spaces, dots, dashes or brackets: a phone number.
_PHONE = re.compile(r"\+?\(?\d(?:[\s().-]*\d){6,}")
_EMAIL = re.compile(r"[^\s@<>()\[\],;:\"']+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")


def w3_time(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with its zone, as the spec's examples: 2026-12-07T09:00:00Z."""
    if value is None:
        return None
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def scrub(text: str) -> str:
    """`text` without phone numbers or e-mail addresses in it."""
    text = _EMAIL.sub("[e-mail removed]", text)
    # A case number ("duplicate of 4827153") is public; it is written as plain digits.
    return _PHONE.sub(lambda m: m.group(0) if m.group(0).isdigit() and is_case_number(m.group(0))
                      else "[number removed]", text)


def _agency(rules: Rules, department_id: str) -> str:
    department = rules.departments.get(department_id)
    return department.name.get(rules.default_language, department_id) if department else department_id


def service(rules: Rules, found: Service) -> dict[str, Any]:
    """One entry of GET services: no attributes are defined, so `metadata` is false."""
    return {"service_code": found.code, "service_name": found.name_in(rules.default_language),
            "description": _description(rules, found), "metadata": False, "type": "realtime",
            "keywords": ", ".join(found.keywords), "group": found.group}


def _description(rules: Rules, found: Service) -> str:
    intent = rules.intent(found.intent)
    text = intent.description.get(rules.default_language, "")
    return f"Report {text} to {found.group}." if text else f"Handled by {found.group}."


def definition(found: Service) -> dict[str, Any]:
    """GET services/{code}: the service needs nothing beyond the standard fields."""
    return {"service_code": found.code, "attributes": []}


def request(rules: Rules, record: ServiceRequest) -> dict[str, Any]:
    """One entry of GET requests, in the spec's field order; no contact details."""
    return {
        "service_request_id": record.case_number,
        # Open311 knows only open and closed: "acknowledged" is still open to the public.
        "status": "closed" if record.status == "closed" else "open",
        "status_notes": scrub(record.status_notes) or None,
        "service_name": record.service_name,
        "service_code": record.service_code,
        "description": scrub(record.description),
        "agency_responsible": _agency(rules, record.department),
        "service_notice": None,
        "requested_datetime": w3_time(record.created_at),
        "updated_datetime": w3_time(record.updated_at),
        "expected_datetime": None,
        "address": record.address,
        "address_id": None,
        "zipcode": _zipcode(record.address),
        "lat": record.lat,
        "long": record.long,
        "media_url": record.media_url,
    }


_ZIP = re.compile(r"\b(\d{5})(?:-\d{4})?\s*$")


def _zipcode(address: str | None) -> str | None:
    """The US ZIP code an address ends with, if it does ("…, Springfield, IL 62701")."""
    found = _ZIP.search(address or "")
    return found.group(1) if found else None


def notice(rules: Rules, record: ServiceRequest) -> str:
    """What the client tells the citizen after a POST."""
    return (f"{_agency(rules, record.department)} has your report of {record.service_name.lower()}; "
            f"its case number is {record.case_number}.")


def discovery(base_url: str, contact: str, changeset: datetime) -> dict[str, Any]:
    """The Service Discovery document that points clients at this endpoint."""
    return {"changeset": w3_time(changeset), "contact": contact, "key_service": contact,
            "endpoints": [{"specification": SPECIFICATION, "url": base_url, "changeset": w3_time(changeset),
                           "type": "production", "formats": ["text/xml", "application/json"]}]}
