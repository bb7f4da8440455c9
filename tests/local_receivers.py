"""Local stand-ins for what the outbox delivers to: an SMTP server (aiosmtpd) and an HTTP receiver
(department webhooks, the city's Open311 CRM). Each can go down and come back on the same port."""
from __future__ import annotations

import json
import socket
import threading
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SmtpServer:
    """aiosmtpd on 127.0.0.1:`port`; `messages` holds every accepted mail (email.message.Message).

    `refuse_next(code_and_text)` answers the next RCPT with that reply ("550 no such user").
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.messages: list[Any] = []
        self._refusals: list[str] = []
        self._controller: Any = None

    def start(self) -> "SmtpServer":
        from aiosmtpd.controller import Controller

        server = self

        class Handler:
            async def handle_RCPT(self, _server: Any, _session: Any, envelope: Any, address: str, _options: Any) -> str:  # noqa: N802
                if server._refusals:
                    return server._refusals.pop(0)
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802
                server.messages.append(message_from_bytes(envelope.content))
                return "250 Message accepted for delivery"

        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def refuse_next(self, reply: str) -> None:
        self._refusals.append(reply)

    def __enter__(self) -> "SmtpServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class HttpReceiver:
    """A threaded HTTP server recording every POST (headers, raw body); answers 200 with `answer`
    (JSON), or the statuses queued with `fail_next(status, body)`."""

    def __init__(self, port: int | None = None, answer: Any = None) -> None:
        self.port = port or free_port()
        self.answer = answer if answer is not None else {"ok": True}
        self.requests: list[dict[str, Any]] = []
        self._failures: list[tuple[int, str]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fail_next(self, status: int, body: str = "") -> None:
        with self._lock:
            self._failures.append((status, body))

    def start(self) -> "HttpReceiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": raw})
                    status, body = receiver._failures.pop(0) if receiver._failures else \
                        (200, json.dumps(receiver.answer))
                payload = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def form(self, index: int) -> dict[str, str]:
        """A recorded request's form-encoded body."""
        raw = self.requests[index]["body"].decode()
        return {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}

    def __enter__(self) -> "HttpReceiver":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
