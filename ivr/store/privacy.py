"""Keeping callers' phone numbers out of logs.

Numbers are stored in full (agents call people back) but every log line shows them masked:
``+15551234567`` → ``+1******4567`` — enough to tell calls apart, not enough to dial.
"""
from __future__ import annotations

import re
from typing import Any

# What Twilio sends in From when the caller withholds their number; not personal data.
_PLACEHOLDERS = {"anonymous", "restricted", "unknown", "private", "unavailable", ""}
_PHONE = re.compile(r"^\+?[\d\s().-]+$")


def mask_number(number: str | None) -> str:
    """The number with all but its first two and last four characters hidden.

    Short numbers (under 7 digits) keep only their last two digits; anything that is not a
    phone number (``client:alice``, ``sip:…``) is hidden entirely except its scheme.
    """
    if number is None:
        return ""
    text = number.strip()
    if text.lower() in _PLACEHOLDERS:
        return text
    if not _PHONE.match(text):
        scheme, sep, _rest = text.partition(":")
        return f"{scheme}:***" if sep and scheme.isalpha() else "***"
    digits = re.sub(r"\D", "", text)
    if len(digits) < 7:
        return "*" * (len(digits) - 2) + digits[-2:] if len(digits) > 2 else "*" * len(digits)
    normal = ("+" if text.startswith("+") else "") + digits
    return normal[:2] + "*" * (len(normal) - 6) + normal[-4:]


def mask_email(address: str | None) -> str:
    """An email address with its local part hidden but its first letter: ``j***@example.gov``."""
    if not address:
        return ""
    local, at, domain = address.strip().rpartition("@")
    if not at or not local:
        return "***"
    return f"{local[0]}***@{domain}"


#: Fields of a call document (ivr.store.history) that hold phone numbers.
NUMBER_FIELDS = ("from", "to")


def mask_record(record: dict[str, Any]) -> dict[str, Any]:
    """A copy of a call document (`call_record` / `recent_calls` item) with its numbers masked.

    Already hashed numbers (``hash:…``, after retention) are shown as they are: they cannot be dialled.
    """
    masked = dict(record)
    for field in NUMBER_FIELDS:
        value = masked.get(field)
        if isinstance(value, str) and not value.startswith("hash:"):
            masked[field] = mask_number(value)
    return masked
