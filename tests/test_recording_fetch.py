"""Recordings are fetched only over https from the recording host, and the account's credentials
never reach any other host — not through a redirect, not through a look-alike URL."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from flask import Flask

from ivr.web.voice.recording import RecordingUnavailable, fetch_recording
from https_server import HTTPSServer, trust

WAV = b"RIFF....WAVE"


class Host:
    """A local server that records every request's path and Authorization header."""

    def __init__(self, tls: bool = True, redirect_to: str | None = None) -> None:
        self.seen: list[tuple[str, str | None]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                owner.seen.append((self.path, self.headers.get("Authorization")))
                if owner.redirect_to and self.path.startswith("/move"):
                    self.send_response(302)
                    self.send_header("Location", owner.redirect_to)
                    self.end_headers()
                    return
                self.send_response(200)
                self.end_headers()
                self.wfile.write(WAV)

            def log_message(self, *args: object) -> None:
                pass

        self.redirect_to = redirect_to
        if tls:
            self.server = HTTPSServer(Handler).start()
            self.port = self.server.port
        else:
            self.plain = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
            self.port = self.plain.server_port
            threading.Thread(target=self.plain.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if hasattr(self, "server"):
            self.server.stop()
        else:
            self.plain.shutdown()
            self.plain.server_close()


@pytest.fixture
def hosts(monkeypatch, tmp_path):
    trust(monkeypatch, tmp_path)
    made: list[Host] = []

    def make(**kwargs) -> Host:
        made.append(Host(**kwargs))
        return made[-1]

    yield make
    for host in made:
        host.stop()


def _app(recording_host: str | None) -> Flask:
    app = Flask("fetch-test")
    app.config.update(TWILIO_ACCOUNT_SID="AC" + "1" * 32, TWILIO_AUTH_TOKEN="secret-token")
    if recording_host is not None:
        app.config["IVR_RECORDING_HOST"] = recording_host
    return app


def fetch(app: Flask, url: str) -> bytes:
    with app.app_context():
        return fetch_recording(url, timeout=3)


def test_the_recording_host_gets_the_credentials(hosts):
    twilio = hosts()
    assert fetch(_app(f"127.0.0.1:{twilio.port}"), f"https://127.0.0.1:{twilio.port}/RE1") == WAV
    assert twilio.seen == [("/RE1", "Basic " + __import__("base64").b64encode(
        f"{'AC' + '1' * 32}:secret-token".encode()).decode())]


def test_a_redirect_to_another_host_is_followed_without_the_credentials(hosts):
    other = hosts()          # "localhost" is another host name than "127.0.0.1"
    twilio = hosts(redirect_to=f"https://localhost:{other.port}/media/RE1?signed=1")
    assert fetch(_app(f"127.0.0.1:{twilio.port}"), f"https://127.0.0.1:{twilio.port}/move/RE1") == WAV
    assert twilio.seen[0][1] is not None
    assert other.seen == [("/media/RE1?signed=1", None)]


def test_a_redirect_to_plain_http_is_refused(hosts):
    plain = hosts(tls=False)
    twilio = hosts(redirect_to=f"http://127.0.0.1:{plain.port}/RE1")
    with pytest.raises(RecordingUnavailable, match="non-https"):
        fetch(_app(f"127.0.0.1:{twilio.port}"), f"https://127.0.0.1:{twilio.port}/move/RE1")
    assert plain.seen == []


@pytest.mark.parametrize("make_url", [
    lambda port: f"https://localhost:{port}/RE1",                      # another host
    lambda port: f"http://127.0.0.1:{port}/RE1",                       # not https
    lambda port: f"https://127.0.0.1:{port + 1}/RE1",                  # another port
    lambda port: f"https://127.0.0.1:{port}@localhost:{port}/RE1",     # credentials-in-URL trick
    lambda port: f"ftp://127.0.0.1:{port}/RE1",
])
def test_urls_off_the_recording_host_are_refused_before_any_request(hosts, make_url):
    twilio = hosts(tls=False)
    other = hosts()
    with pytest.raises(RecordingUnavailable, match="refused"):
        fetch(_app(f"127.0.0.1:{twilio.port}"), make_url(other.port if "localhost" in make_url(0) else twilio.port))
    assert twilio.seen == [] and other.seen == []


@pytest.mark.parametrize("url", [
    "https://api.twilio.com.evil.example/2010-04-01/Accounts/AC1/Recordings/RE1",
    "https://evil.example/api.twilio.com/RE1",
    "https://api.twilio.com@evil.example/RE1",
    "http://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1",
])
def test_by_default_only_twilio_is_trusted(url):
    with pytest.raises(RecordingUnavailable, match="refused"):
        fetch(_app(None), url)
