"""A local HTTPS server for tests, with a certificate from a throw-away CA (trustme).

`trust(monkeypatch)` makes Python's default SSL context trust that CA (SSL_CERT_FILE is read by
OpenSSL whenever a default context is created), so code under test keeps its normal
certificate checks and talks to 127.0.0.1 / localhost as it would to a real host.
"""
from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import trustme

_CA = trustme.CA()
_CERT = _CA.issue_cert("127.0.0.1", "localhost")


def trust(monkeypatch, tmp_path: Path) -> None:
    """Trust the test CA in this process (for ssl.create_default_context)."""
    pem = tmp_path / "test-ca.pem"
    _CA.cert_pem.write_to_path(str(pem))
    monkeypatch.setenv("SSL_CERT_FILE", str(pem))


class HTTPSServer:
    """ThreadingHTTPServer over TLS on 127.0.0.1; `start()` / `stop()`."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        _CERT.configure_cert(context)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_port
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> "HTTPSServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self._thread.join(timeout=5)
        self.httpd.server_close()
