"""Shared fixtures: app, client, runner (like the Flask tutorial), and the database matrix.

DB tests take the `db_url` fixture and run on SQLite and, when reachable, PostgreSQL
(`IVR_TEST_POSTGRES_URL`, default the local server). CI sets IVR_REQUIRE_POSTGRES=1 so an
unreachable PostgreSQL fails instead of skipping.
"""
from __future__ import annotations

import contextlib
import os
import urllib.parse
from pathlib import Path

import pytest

from ivr.routing.classify import Classifier
from ivr.routing.load import load_rules
from ivr.store.db import postgres_on_psycopg
from ivr.telephony.simulator import FlaskTransport, Reply, SimulatedCall

ROOT = Path(__file__).resolve().parent.parent
# Labelled sets and the city's department table, copied from the project's shared folder so a clone
# with nothing beside it runs every test.
DATA_DIR = ROOT / "tests" / "data"
RULES_PATH = ROOT / "routing_rules.yaml"
TEST_AUTH_TOKEN = "test-auth-token"
TEST_API_TOKEN = "test-api-token"
PUBLIC_URL = "https://ivr.example.test"
# Normalised as the app does, so an older psycopg2 URL in someone's environment (or CI's) still
# reaches the server through psycopg 3, the only driver installed.
POSTGRES_URL = postgres_on_psycopg(
    os.environ.get("IVR_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
).render_as_string(hide_password=False)


def _postgres_reachable() -> str | None:
    try:
        import sqlalchemy as sa

        engine = sa.create_engine(POSTGRES_URL)
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # any failure means "not reachable"; say why
        return f"{type(exc).__name__}: {exc}".splitlines()[0]


def redis_url_or_skip(url: str) -> str:
    """`url` when a Redis answers there; else the test is skipped: the Redis variant of a queue test
    needs a server this machine may not run (CI starts one and sets IVR_REQUIRE_REDIS: it fails)."""
    import redis   # a test dependency (the `redis` extra): missing is a broken install, not a skip
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.exceptions.ConnectionError as exc:
        if os.environ.get("IVR_REQUIRE_REDIS"):
            pytest.fail(f"Redis required but unreachable at {url}: {exc}")
        pytest.skip(f"no Redis answers at {url}: the Redis variant needs a server (start redis-server, or "
                    "set IVR_TEST_REDIS_URL); the queue on SQLite is tested without it")
    return url


@pytest.fixture(scope="module")
def rules():
    """The shipped rules, loaded once per test module (a module may define its own `rules`)."""
    return load_rules(RULES_PATH)


@pytest.fixture(scope="module")
def classifier(rules):
    return Classifier(rules)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A fresh, empty database URL on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ivr.sqlite3'}"
        return
    problem = _postgres_reachable()
    if problem:
        if os.environ.get("IVR_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL required but unreachable at {POSTGRES_URL}: {problem}")
        pytest.skip(f"PostgreSQL unreachable at {POSTGRES_URL}: {problem}")
    import sqlalchemy as sa

    # One schema per test keeps tests independent on the shared `test` database.
    schema = f"t_{os.getpid()}_{abs(hash(request.node.nodeid)) % 10**8}"
    engine = sa.create_engine(POSTGRES_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


def simulated_call(client, *, token: str = TEST_AUTH_TOKEN, **kwargs) -> SimulatedCall:
    """A phone call into the app behind `client`, made as Twilio makes it (ivr.telephony.simulator)."""
    return SimulatedCall(FlaskTransport(client), token=token, public_url=PUBLIC_URL, **kwargs)


def signed_post(client, url: str, params: dict[str, str], *, token: str = TEST_AUTH_TOKEN) -> Reply:
    """POST `params` to `url` (absolute, or a path under PUBLIC_URL) signed as Twilio signs it."""
    absolute = urllib.parse.urljoin(PUBLIC_URL + "/", url)
    call = simulated_call(client, token=token)
    return call.post(absolute, params)


def store_only_app(db_url: str, name: str = "store-test"):
    """A bare Flask app with only the store initialised: for tests of ivr.store on its own."""
    from flask import Flask

    from ivr.store import db

    app = Flask(name)
    app.config["IVR_DATABASE_URL"] = db_url
    db.init_app(app)
    return app


@pytest.fixture
def app_config(tmp_path):
    """Config overrides for a test app; tests may update it before asking for `app`."""
    return {
        "TESTING": True,
        "IVR_DATABASE_URL": f"sqlite:///{tmp_path / 'ivr.sqlite3'}",
        "IVR_RULES_PATH": str(RULES_PATH),
        "IVR_PUBLIC_URL": PUBLIC_URL,
        "TWILIO_AUTH_TOKEN": TEST_AUTH_TOKEN,
        "IVR_API_TOKEN": TEST_API_TOKEN,
        "IVR_PROMPT_CACHE_DIR": str(tmp_path / "prompt-cache"),
        "IVR_JOBS_DB": str(tmp_path / "jobs.sqlite3"),
        "IVR_CAPTURE": "twilio",
        "IVR_SPEECH_ENGINE": "twilio",
    }


@pytest.fixture
def app(app_config):
    from ivr import create_app

    return create_app(app_config)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


class SettableClock:
    """The app's notion of "now" (IVR_CLOCK), settable per test: `clock.now = NIGHT`."""

    def __init__(self, now) -> None:
        self.now = now

    def __call__(self):
        return self.now


@contextlib.contextmanager
def live_media_server(app):
    """The app on a real threaded server, its English engine warmed (so the first turn is not
    the model's load): yields (ws:// base URL, the engine `auto` chose for English)."""
    import threading

    from werkzeug.serving import make_server

    from ivr.speech.service import speech_service

    with app.app_context():
        engine = speech_service().engine_for("en")
        if hasattr(engine, "warm"):
            engine.warm()
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"ws://127.0.0.1:{httpd.server_port}", engine.name
    finally:
        httpd.shutdown()
        thread.join(timeout=5)
