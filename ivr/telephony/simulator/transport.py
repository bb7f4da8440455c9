"""How the simulator's requests reach the line, and what comes back.

A `Transport` sends one request to an absolute URL: `FlaskTransport` through a Flask test client
(tests, CPU benches), `HttpTransport` over a kept-alive HTTP/1.1 connection (`ivr call`, latency
benches). Both answer a `Reply`, shaped like Flask's test response.
"""
from __future__ import annotations

import http.client
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol

ACCOUNT_SID = "AC" + "0" * 32   # the account every simulated request comes from


class SimulatorError(RuntimeError):
    """The line answered something Twilio could not follow (an error status, invalid TwiML)."""


class Unreachable(SimulatorError):
    """Nothing answered at the line's address."""


@dataclass(frozen=True)
class Reply:
    """One HTTP answer, with the attribute names of Flask's test response."""
    status_code: int
    data: bytes
    mimetype: str
    headers: Mapping[str, str] = field(default_factory=dict)

    def get_data(self) -> bytes:
        return self.data


class Transport(Protocol):
    """How requests reach the line: `request("POST", absolute_url, form, headers)`."""

    def request(self, method: str, url: str, form: Mapping[str, str] | None,
                headers: Mapping[str, str]) -> Reply: ...


class FlaskTransport:
    """Requests through a Flask test client (the URL's scheme and host become its base_url)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def request(self, method: str, url: str, form: Mapping[str, str] | None,
                headers: Mapping[str, str]) -> Reply:
        parts = urllib.parse.urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        answer = self.client.open(path, method=method, data=dict(form or {}), headers=dict(headers),
                                  base_url=f"{parts.scheme}://{parts.netloc}")
        return Reply(answer.status_code, answer.get_data(), answer.mimetype, dict(answer.headers))


class HttpTransport:
    """Requests over HTTP/1.1 to `base_url`, on one kept-alive connection (one per caller)."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SimulatorError(f"not an http(s) URL: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.https = parts.scheme == "https"
        self.host, self.port, self.timeout = parts.hostname, parts.port, timeout
        self.conn: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        kind = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        return kind(self.host, self.port, timeout=self.timeout)

    def request(self, method: str, url: str, form: Mapping[str, str] | None,
                headers: Mapping[str, str]) -> Reply:
        parts = urllib.parse.urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        body = urllib.parse.urlencode(form) if form is not None else None
        headers = {**headers, **({"Content-Type": "application/x-www-form-urlencoded"} if body is not None else {})}
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = self._connect()
            try:
                self.conn.request(method, path, body=body, headers=headers)
                answer = self.conn.getresponse()
                data = answer.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # The server closed the idle kept-alive connection while the caller listened;
                # the request never reached the app, so any HTTP client sends it again.
                self.close()
                if attempt == 2:
                    raise
                continue
            except OSError as exc:
                self.close()
                raise Unreachable(f"cannot reach {self.base_url} ({exc})") from None
            mimetype = (answer.getheader("Content-Type") or "").split(";")[0].strip()
            return Reply(answer.status, data, mimetype, dict(answer.getheaders()))
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
