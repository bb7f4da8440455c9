"""A local fake of Twilio's REST API (Calls and Messages), for tests and demos: no network.

    with FakeTwilioRest() as fake:
        app.config["IVR_TWILIO_API_URL"] = fake.url        # ivr.telephony.rest redirects here
        … code that calls client.calls.create(…) …
        assert fake.calls[0]["To"] == "+13125550104"

It checks HTTP basic auth against the account SID and token it was given (401 like Twilio
otherwise), answers POST …/Calls.json and …/Messages.json with the JSON resource Twilio would
return, and records every request. `fail_next(status, code, message)` makes the next create fail
the way Twilio does (JSON error body), e.g. 400 / 21211 "invalid 'To' phone number".
"""
from __future__ import annotations

import base64
import itertools
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "test-auth-token"
_CREATE = re.compile(r"^/2010-04-01/Accounts/(?P<account>AC[0-9a-f]{32})/(?P<kind>Calls|Messages)\.json$")


class FakeTwilioRest:
    """A threaded HTTP server on 127.0.0.1 (a free port) speaking enough of api.twilio.com."""

    def __init__(self, account_sid: str = ACCOUNT_SID, auth_token: str = AUTH_TOKEN, port: int = 0,
                 delay_s: float = 0.0) -> None:
        self.account_sid, self.auth_token = account_sid, auth_token
        self.delay_s = delay_s   # each answer waits this long (the real API takes 100-300 ms)
        self.requests: list[dict[str, Any]] = []     # every request: method, path, form, authorised
        self.calls: list[dict[str, str]] = []        # form of each created call
        self.messages: list[dict[str, str]] = []     # form of each created message
        self._failures: list[tuple[int, int, str]] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        # port: a fixed one lets a test stop the fake and start another in its place ("Twilio is back").
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeTwilioRest":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "FakeTwilioRest":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def fail_next(self, status: int = 400, code: int = 21211, message: str = "The 'To' number is not valid") -> None:
        """The next create answers this Twilio error instead of succeeding."""
        with self._lock:
            self._failures.append((status, code, message))

    # --- the server side ---------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:   # quiet test output
                pass

            def do_POST(self) -> None:   # noqa: N802 — http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode("utf-8")
                form = {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}
                if fake.delay_s:
                    time.sleep(fake.delay_s)
                status, body = fake._create(self.path, form, self.headers.get("Authorization", ""))
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        return Handler

    def _authorised(self, header: str) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return header == f"Basic {expected}"

    def _create(self, path: str, form: dict[str, str], auth: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            authorised = self._authorised(auth)
            self.requests.append({"method": "POST", "path": path, "form": form, "authorised": authorised})
            match = _CREATE.match(path.split("?")[0])
            if not authorised:
                return 401, {"code": 20003, "message": "Authenticate", "status": 401}
            if match is None or match["account"] != self.account_sid:
                return 404, {"code": 20404, "message": f"The requested resource {path} was not found", "status": 404}
            if self._failures:
                status, code, message = self._failures.pop(0)
                return status, {"code": code, "message": message, "status": status,
                                "more_info": f"https://www.twilio.com/docs/errors/{code}"}
            number = next(self._ids)
            if match["kind"] == "Calls":
                self.calls.append(form)
                sid = f"CA{number:032x}"
                return 201, {"sid": sid, "account_sid": self.account_sid, "to": form.get("To"),
                             "from": form.get("From"), "status": "queued", "direction": "outbound-api",
                             "uri": f"/2010-04-01/Accounts/{self.account_sid}/Calls/{sid}.json"}
            self.messages.append(form)
            sid = f"SM{number:032x}"
            return 201, {"sid": sid, "account_sid": self.account_sid, "to": form.get("To"),
                         "from": form.get("From"), "body": form.get("Body"), "status": "queued",
                         "direction": "outbound-api",
                         "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json"}
