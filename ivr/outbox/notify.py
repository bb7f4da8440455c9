"""What a department is sent about a new service request, per kind of target.

Every message says: the case number, the service, the citizen's description in their own words,
the location, the language, the channel and the time (in the department's time zone and UTC).

The citizen's phone number (only when they gave one):
- **webhook** and **Open311**: in full. These go to the department's own case system over HTTPS
  (the webhook signed, Open311 with the city's api_key), where agents call citizens back;
  GeoReport v2 has a `phone` field for exactly this.
- **e-mail**: masked (+1******4567). Mail is copied to servers and mailboxes the line cannot
  control and is often forwarded; an agent who must call back opens the case
  (`ivr requests show CASE`, the console), where the number is shown to those allowed to see it.

Targets come from the rules (`departments.<id>.notify`, parsed by ivr.routing): each has a `kind`
("email" | "webhook" | "open311") and a `target` (address or URL), and for webhooks
`secret_env` (the environment variable holding the HMAC key), for Open311 `api_key_env`,
optionally `service_code` and `jurisdiction_id`. Secrets never enter the rules or the outbox
row: only the variable's name does, read when sending.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from ivr.store.privacy import mask_number


@dataclass(frozen=True)
class QueuedMessage:
    kind: str
    key: str
    target: str
    payload: dict[str, Any]


def _get(obj: Any, name: str, default: Any = None) -> Any:
    """Attribute or mapping item: rules objects are dataclasses, tests may use dicts."""
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def notify_targets(rules: Any, department_id: str) -> list[dict[str, Any]]:
    """The department's notify targets as plain dicts (kind, target, options)."""
    departments = _get(rules, "departments", {}) or {}
    department = departments.get(department_id) if hasattr(departments, "get") else None
    targets: list[dict[str, Any]] = []
    for item in _get(department, "notify", ()) or ():
        kind, target = _get(item, "kind"), _get(item, "target")
        if kind is None and isinstance(item, dict):     # the YAML shape: {email: addr} …
            for name in ("email", "webhook", "open311"):
                if name in item:
                    kind, target = name, item[name]
        if kind and target:
            targets.append({"kind": kind, "target": str(target),
                            **{k: _get(item, k) for k in ("secret_env", "api_key_env", "service_code",
                                                          "jurisdiction_id") if _get(item, k)}})
    return targets


def _service(request: Any) -> tuple[str, str, str]:
    """(code, name, department) of the request, whatever its exact shape."""
    service = _get(request, "service")
    code = _get(request, "service_code") or _get(service, "code") or ""
    names = _get(service, "name") or _get(request, "service_name") or {}
    if isinstance(names, dict):
        name = names.get("en") or next(iter(names.values()), code)
    else:
        name = str(names or code)
    department = _get(request, "department") or _get(service, "department") or ""
    return code, name, department


def _times(created: datetime | None, rules: Any, department_id: str) -> tuple[str, str]:
    created = created or datetime.now(timezone.utc)
    department = (_get(rules, "departments", {}) or {}).get(department_id)
    zone = _get(department, "timezone") or "UTC"
    try:
        local = created.astimezone(ZoneInfo(zone))
    except Exception:   # noqa: BLE001 - an unknown zone only changes how the time is shown
        local = created
    return local.strftime("%Y-%m-%d %H:%M %Z"), created.astimezone(timezone.utc).isoformat()


def document(request: Any, rules: Any) -> dict[str, Any]:
    """The request as the JSON webhook sends it (full contact, see the module docstring)."""
    code, name, department = _service(request)
    local, utc = _times(_get(request, "created_at"), rules, department)
    return {
        "event": "service_request.created",
        "case_number": _get(request, "case_number"),
        "service_code": code, "service_name": name, "department": department,
        "channel": _get(request, "channel"), "language": _get(request, "language"),
        "description": _get(request, "description") or "",
        "address": _get(request, "address"), "lat": _get(request, "lat"), "long": _get(request, "long"),
        "contact_phone": _get(request, "contact_phone"), "contact_email": _get(request, "contact_email"),
        "status": _get(request, "status") or "open",
        "created_at": utc, "created_local": local,
    }


def email_text(doc: dict[str, Any]) -> tuple[str, str]:
    """(subject, body) of the department's e-mail; the phone number masked."""
    subject = f"New 311 request {doc['case_number']}: {doc['service_name']}"
    location = doc["address"] or ""
    if doc["lat"] is not None and doc["long"] is not None:
        location = f"{location} ({doc['lat']:.5f}, {doc['long']:.5f})".strip()
    lines = [
        f"Case number: {doc['case_number']}",
        f"Service: {doc['service_name']} ({doc['service_code']})",
        f"Department: {doc['department']}",
        f"Received: {doc['created_local']} ({doc['created_at']})",
        f"Channel: {doc['channel']}    Language: {doc['language']}",
        f"Location: {location or 'not given'}",
        "",
        "In the citizen's words:",
        f"  {doc['description'] or '(nothing said)'}",
        "",
    ]
    if doc["contact_phone"]:
        lines.append(f"Contact: {mask_number(doc['contact_phone'])} (full number in the case: "
                     f"ivr requests show {doc['case_number']})")
    if doc["contact_email"]:
        lines.append(f"E-mail: {doc['contact_email']}")
    lines.append("")
    lines.append("Sent by the city line's outbox; reply-to is not monitored.")
    return subject, "\n".join(lines) + "\n"


def open311_form(doc: dict[str, Any], target: dict[str, Any]) -> dict[str, str]:
    """GeoReport v2 POST requests fields (api_key is added when sending, from the environment)."""
    form = {"service_code": target.get("service_code") or doc["service_code"],
            "description": doc["description"][:4000]}
    if target.get("jurisdiction_id"):
        form["jurisdiction_id"] = target["jurisdiction_id"]
    if doc["lat"] is not None and doc["long"] is not None:
        form["lat"], form["long"] = str(doc["lat"]), str(doc["long"])
    if doc["address"]:
        form["address_string"] = doc["address"]
    if doc["contact_phone"]:
        form["phone"] = doc["contact_phone"]
    if doc["contact_email"]:
        form["email"] = doc["contact_email"]
    # The case number travels too, so the CRM can show it and find ours from theirs.
    form["attribute[ivr_case_number]"] = doc["case_number"] or ""
    return form


def department_messages(request: Any, rules: Any) -> list[QueuedMessage]:
    """One message per notify target of the request's department."""
    doc = document(request, rules)
    messages: list[QueuedMessage] = []
    for index, target in enumerate(notify_targets(rules, doc["department"])):
        kind, address = target["kind"], target["target"]
        digest = hashlib.sha256(address.encode()).hexdigest()[:12]
        key = f"notify:{doc['case_number']}:{index}:{kind}:{digest}"
        if kind == "email":
            subject, text = email_text(doc)
            payload: dict[str, Any] = {"subject": subject, "text": text, "case_number": doc["case_number"]}
        elif kind == "webhook":
            payload = {"body": doc, "secret_env": target.get("secret_env")}
        elif kind == "open311":
            payload = {"form": open311_form(doc, target), "api_key_env": target.get("api_key_env"),
                       "case_number": doc["case_number"]}
        else:
            continue   # ivr check refuses unknown kinds; an old row of rules must not break a webhook
        messages.append(QueuedMessage(kind, key, address, payload))
    return messages
