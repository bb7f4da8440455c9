"""`departments.<id>.notify:` — where a department's new service requests are sent.

```yaml
notify:
  - email: potholes@city.example.gov
  - webhook: {url: "https://crm.example.gov/hooks/311", secret_env: IVR_ROADS_WEBHOOK_SECRET}
  - open311: {url: "https://crm.example.gov/open311/v2", api_key_env: IVR_CRM_API_KEY, service_code: "4"}
```

Secrets never sit in the rules file (it is versioned and shown in the console): a target names the
environment variable that holds its secret, and the outbox reads it when it sends.
"""
from __future__ import annotations

import re
import urllib.parse

from yaml.nodes import Node

from ivr.routing.rules import NotifyTarget
from ivr.routing.yamlread import Reader

KINDS = ("email", "webhook", "open311")
_EMAIL = re.compile(r"^[^@\s<>,;]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$")
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_SERVICE_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_KEYS = {"webhook": ("url", "secret_env"), "open311": ("url", "api_key_env", "service_code", "jurisdiction_id")}
_REQUIRED = {"webhook": ("url", "secret_env"), "open311": ("url", "api_key_env")}


def _url(reader: Reader, node: Node, what: str) -> str | None:
    value = reader.text(node, what)
    if value is None:
        return None
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        reader.report(node, f"{what} '{value}' is not an http(s) URL — write it like "
                            "'https://crm.example.gov/hooks/311'")
        return None
    return value


def _env(reader: Reader, node: Node, what: str) -> str | None:
    value = reader.text(node, what)
    if value is not None and not _ENV_NAME.match(value):
        reader.report(node, f"{what} '{value}' must be the NAME of an environment variable (capitals, digits, "
                            "'_'), e.g. IVR_ROADS_WEBHOOK_SECRET — never the secret itself")
        return None
    return value


def _target(reader: Reader, node: Node, what: str) -> NotifyTarget | None:
    entries = reader.mapping(node, what, KINDS)
    if entries is None:
        return None
    if len(entries) != 1:
        if entries:
            reader.report(node, f"{what} must have exactly one of {', '.join(KINDS)} — write one per list item")
        elif not node.value:   # unknown keys were reported by `mapping`
            reader.report(node, f"{what} is empty — write '- email: address', '- webhook: {{url, secret_env}}' "
                                "or '- open311: {url, api_key_env}'")
        return None
    (kind, (_, value)), = entries.items()
    if kind == "email":
        address = reader.text(value, f"the email address of {what}")
        if address is not None and not _EMAIL.match(address):
            reader.report(value, f"'{address}' in {what} is not an email address — write it like "
                                 "roads-requests@city.example.gov")
            return None
        return None if address is None else NotifyTarget("email", address)
    fields = reader.mapping(value, f"the {kind} of {what}", _KEYS[kind], required=_REQUIRED[kind])
    if fields is None or any(key not in fields for key in _REQUIRED[kind]):
        return None
    url = _url(reader, fields["url"][1], f"the {kind} url of {what}")
    if kind == "webhook":
        secret = _env(reader, fields["secret_env"][1], f"secret_env of {what}")
        return None if url is None or secret is None else NotifyTarget("webhook", url, secret_env=secret)
    api_key = _env(reader, fields["api_key_env"][1], f"api_key_env of {what}")
    code = None
    if "service_code" in fields:
        code = reader.text(fields["service_code"][1], f"the upstream service_code of {what}")
        if code is not None and not _SERVICE_CODE.match(code):
            reader.report(fields["service_code"][1], f"the upstream service_code of {what} '{code}' must be "
                                                     "1-64 letters, digits, '_', '.', ':' or '-'")
            return None
    jurisdiction = None
    if "jurisdiction_id" in fields:
        jurisdiction = reader.text(fields["jurisdiction_id"][1], f"the jurisdiction_id of {what}")
        if jurisdiction is None:
            return None
    if url is None or api_key is None or ("service_code" in fields and code is None):
        return None
    return NotifyTarget("open311", url, api_key_env=api_key, service_code=code, jurisdiction_id=jurisdiction)


def parse_notify(reader: Reader, node: Node, what: str) -> tuple[NotifyTarget, ...] | None:
    """The list of targets; None (reported) when any is unusable."""
    items = reader.sequence(node, f"notify of {what}")
    if items is None:
        return None
    targets = []
    for index, item in enumerate(items, 1):
        target = _target(reader, item, f"notify target {index} of {what}")
        if target is None:
            return None
        if target in targets:
            reader.report(item, f"notify target {index} of {what} repeats an earlier one — each new request "
                                "would be sent there twice; remove it")
            return None
        targets.append(target)
    return tuple(targets)
