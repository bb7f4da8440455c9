"""The database goes away mid-call: every webhook still answers valid TwiML that reaches a
person (the operator), never a 5xx; when the database is back, calls are served normally.

PostgreSQL is reached through a TCP relay the test cuts (pooled connections die, new ones are
refused); SQLite loses its directory (new connections cannot open the file).
"""
from __future__ import annotations

import shutil
import socket
import threading
import xml.etree.ElementTree as ET

import pytest
from sqlalchemy.engine import make_url

from conftest import RULES_PATH, signed_post

pytestmark = pytest.mark.db
CALL = {"CallSid": "CAdbdown00000000000000000000000001", "From": "+15551234567",
        "To": "+13125550100", "AccountSid": "AC" + "0" * 32}


class Relay:
    """A TCP relay to the database that can be cut and restored, like a network failure."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.up = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()  # refused, as a dead server would
                continue
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        self.up = False
        for sock in self.sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.sockets.clear()

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


def operator_line() -> str:
    from ivr.routing.load import load_rules
    from ivr.telephony.twiml import dial_target

    rules = load_rules(RULES_PATH)
    return dial_target(rules.departments[rules.operator].line)


@pytest.fixture
def outage(app_config, db_url, tmp_path):
    """(app, cut, restore): an app whose database can be taken away and given back."""
    from ivr import create_app
    from ivr.store import db

    url = make_url(db_url)
    if url.get_backend_name() == "postgresql":
        relay = Relay(url.host or "127.0.0.1", url.port or 5432)
        app = create_app({**app_config, "IVR_DATABASE_URL":
                          url.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False)})
        cut, restore = relay.cut, relay.restore
    else:
        relay = None
        folder = tmp_path / "dbdir"
        folder.mkdir()
        app = create_app({**app_config, "IVR_DATABASE_URL": f"sqlite:///{folder / 'ivr.sqlite3'}"})

        def cut() -> None:
            shutil.move(folder, tmp_path / "dbdir-gone")
            db.engine(app).dispose()  # open handles would survive the move; a new process would not

        def restore() -> None:
            shutil.move(tmp_path / "dbdir-gone", folder)
    yield app, cut, restore
    db.engine(app).dispose()
    if relay is not None:
        relay.close()


def _assert_dials_operator(response) -> None:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype in ("text/xml", "application/xml")
    twiml = ET.fromstring(response.data)
    assert twiml.tag == "Response"
    dial = twiml.find("Dial")
    assert dial is not None, response.get_data(as_text=True)
    assert operator_line() in ET.tostring(dial, encoding="unicode")


def test_webhooks_dial_the_operator_while_the_database_is_down(outage):
    app, cut, restore = outage
    client = app.test_client()
    first = signed_post(client, "/voice/incoming", {**CALL, "CallStatus": "ringing"})
    assert first.status_code == 200
    gather = ET.fromstring(first.data).find("Gather")
    assert gather is not None, first.get_data(as_text=True)

    cut()
    answer = {**CALL, "CallStatus": "in-progress", "SpeechResult": "English", "Confidence": "0.9"}
    _assert_dials_operator(signed_post(client, gather.get("action", ""), answer))
    _assert_dials_operator(signed_post(client, "/voice/incoming", {**CALL, "CallSid": "CAnew" + "0" * 29,
                                                                  "CallStatus": "ringing"}))
    status = signed_post(client, "/voice/status", {**CALL, "CallStatus": "completed", "CallDuration": "30"})
    assert status.status_code == 200 and ET.fromstring(status.data).tag == "Response"

    restore()
    again = signed_post(client, "/voice/incoming", {**CALL, "CallSid": "CAback" + "0" * 28,
                                                    "CallStatus": "ringing"})
    assert again.status_code == 200
    assert ET.fromstring(again.data).find("Gather") is not None  # served normally again


def test_health_reports_the_database(outage):
    from ivr.store import db

    app, cut, restore = outage
    assert db.ping(app) is None
    cut()
    assert db.ping(app)
    restore()
    assert db.ping(app) is None
