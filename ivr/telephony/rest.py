"""Twilio's REST API, for the things the line starts itself (calling a citizen back, texts).

`rest_client(config)` builds a `twilio.rest.Client` from TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN.
IVR_TWILIO_API_URL points every request at another host instead of https://*.twilio.com — a
local fake of the API in tests and demos, or a recording proxy; the client library is otherwise
used exactly as in production (same request building, same response parsing).
"""
from __future__ import annotations

from typing import Any, Mapping
from urllib.parse import urlsplit, urlunsplit

from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

#: Seconds to wait for Twilio: an agent is waiting on the page.
TIMEOUT_S = 10.0


class RedirectingHttpClient(TwilioHttpClient):
    """Sends each request to `base_url` (scheme://host:port) keeping the path and query."""

    def __init__(self, base_url: str, timeout: float = TIMEOUT_S) -> None:
        super().__init__(timeout=timeout)
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"IVR_TWILIO_API_URL must look like http://host:port, got {base_url!r}")
        self.scheme, self.netloc = parts.scheme, parts.netloc

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        parts = urlsplit(url)
        return super().request(method, urlunsplit((self.scheme, self.netloc, parts.path, parts.query, "")),
                               *args, **kwargs)


class NotConfigured(RuntimeError):
    """The REST API cannot be used: account SID or auth token is missing."""


def rest_client(config: Mapping[str, Any]) -> Client:
    """A Twilio REST client for this deployment (NotConfigured when credentials are missing)."""
    sid, token = config.get("TWILIO_ACCOUNT_SID") or "", config.get("TWILIO_AUTH_TOKEN") or ""
    if not sid or not token:
        raise NotConfigured("set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN to place calls")
    base = config.get("IVR_TWILIO_API_URL") or ""
    http_client = RedirectingHttpClient(base) if base else TwilioHttpClient(timeout=TIMEOUT_S)
    return Client(sid, token, http_client=http_client)
