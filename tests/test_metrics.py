"""/metrics: token-only Prometheus exposition whose series follow the calls — across gunicorn
workers too — and never carry a CallSid or a phone number."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from ivr import rules_source
from test_call_flows import OPEN, start_in_english
from conftest import SettableClock, simulated_call

TOKEN = "metrics-secret"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def app_config(app_config):
    return {**app_config, "IVR_TTS": "off", "IVR_CLOCK": SettableClock(OPEN), "IVR_METRICS_TOKEN": TOKEN}


@pytest.fixture
def sim(client):
    return simulated_call(client)


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scrape(client) -> str:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_metrics_need_the_token(client):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    refused = client.get("/metrics", headers={"Authorization": TOKEN})
    assert refused.status_code == 401 and "ivr_" not in refused.get_data(as_text=True)
    assert "ivr_calls_total" in scrape(client)


def test_metrics_are_off_without_a_token(app_config):
    from ivr import create_app

    app = create_app({**app_config, "IVR_METRICS_TOKEN": ""})
    assert app.test_client().get("/metrics", headers={"Authorization": "Bearer "}).status_code == 404


def test_every_series_the_operators_expect_is_exposed(client):
    text = scrape(client)
    for name in ("ivr_webhook_duration_seconds_bucket", "ivr_calls_total", "ivr_routing_decisions_total",
                 "ivr_confirmations_total", "ivr_menu_fallbacks_total", "ivr_operator_fallbacks_total",
                 "ivr_rescues_total", "ivr_asr_decode_seconds", "ivr_decoder_pool_in_use",
                 "ivr_decoder_pool_waits_total", "ivr_active_streams", "ivr_tts_renders_total",
                 "ivr_say_fallbacks_total", "ivr_rules_reloads_total", "ivr_rules_reloads_refused_total",
                 "ivr_sqlite_write_turn_wait_seconds", "ivr_sqlite_write_turn_held_seconds",
                 "ivr_sqlite_write_turn_gave_up_total"):
        assert f"# TYPE {name.removesuffix('_bucket').removesuffix('_total')}" in text, name


def test_a_routed_call_counts_its_call_decision_and_webhooks(client, sim):
    calls = value("ivr_calls_total")
    transfers = value("ivr_routing_decisions_total", department="roads", action="transfer")
    incoming = value("ivr_webhook_duration_seconds_count", endpoint="/voice/incoming", status="200")
    says = value("ivr_say_fallbacks_total")
    start_in_english(sim)
    sim.say("I want to report a pothole on Main Street")
    sim.post("/voice/incoming", sim.params())           # Twilio's retry: replayed, not a new call
    assert value("ivr_calls_total") == calls + 1
    assert value("ivr_routing_decisions_total", department="roads", action="transfer") == transfers + 1
    assert value("ivr_webhook_duration_seconds_count", endpoint="/voice/incoming", status="200") == incoming + 2
    assert value("ivr_say_fallbacks_total") > says          # IVR_TTS=off: every prompt is <Say>
    text = scrape(client)
    assert 'ivr_webhook_duration_seconds_bucket{endpoint="/voice/incoming",le="15.0",status="200"}' in text
    assert sim.sid not in text and "5550123" not in text


def test_confirmations_count_yes_and_no(sim, client):
    yes, no = value("ivr_confirmations_total", answer="yes"), value("ivr_confirmations_total", answer="no")
    start_in_english(sim)
    sim.say("pothole", confidence=0.30)
    sim.say("no")
    sim.say("pothole", confidence=0.30)
    sim.say("yes")
    assert value("ivr_confirmations_total", answer="yes") == yes + 1
    assert value("ivr_confirmations_total", answer="no") == no + 1


def test_menu_and_operator_fallbacks_are_counted(sim):
    menus, operators = value("ivr_menu_fallbacks_total"), value("ivr_operator_fallbacks_total")
    start_in_english(sim)
    for _ in range(3):
        sim.silence()                                   # → keypad menu
    for _ in range(3):
        sim.silence()                                   # → operator
    assert value("ivr_menu_fallbacks_total") == menus + 1
    assert value("ivr_operator_fallbacks_total") == operators + 1


def test_rescues_are_counted_by_endpoint(sim, monkeypatch):
    before = value("ivr_rescues_total", endpoint="/voice/turn")
    start_in_english(sim)

    def broken():
        raise RuntimeError("classifier exploded")
    monkeypatch.setattr(rules_source, "current_classifier", broken)
    sim.say("there is a pothole")
    assert sim.has("Dial")
    assert value("ivr_rescues_total", endpoint="/voice/turn") == before + 1


def test_rules_reloads_and_refusals_are_counted(app_config, tmp_path):
    import shutil

    from ivr import create_app

    rules = tmp_path / "rules.yaml"
    shutil.copy(app_config["IVR_RULES_PATH"], rules)
    app = create_app({**app_config, "IVR_RULES_PATH": str(rules)})
    loaded, refused = value("ivr_rules_reloads_total"), value("ivr_rules_reloads_refused_total")
    with app.app_context():
        rules.write_text(rules.read_text() + "\n# touched\n")
        assert rules_source.check_now()
        rules.write_text("departments: [not valid\n")
        assert not rules_source.check_now()
    assert value("ivr_rules_reloads_total") == loaded + 1
    assert value("ivr_rules_reloads_refused_total") == refused + 1


def test_asr_decode_time_is_observed_per_engine(app_config):
    """A recognised recording is timed under its engine's label."""
    from ivr import create_app, metrics

    class FakeEngine:
        name = "fake"

    before = value("ivr_asr_decode_seconds_count", engine="fake")
    with metrics.decode_timer(FakeEngine()):
        pass
    assert value("ivr_asr_decode_seconds_count", engine="fake") == before + 1
    assert metrics.engine_label(type("PocketsphinxRecognizer", (), {"__module__": "ivr.speech.engines.pocketsphinx"})()) \
        == "pocketsphinx"
    assert create_app  # the app is not needed: any layer may count


# --- several gunicorn workers -------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def gunicorn_line(tmp_path):
    """The app under the repository's gunicorn.conf.py with 2 workers (the production start)."""
    port = _free_port()
    env = {**os.environ, "IVR_DATABASE_URL": f"sqlite:///{tmp_path / 'ivr.sqlite3'}",
           "IVR_JOBS_DB": str(tmp_path / "jobs.sqlite3"), "IVR_PROMPT_CACHE_DIR": str(tmp_path / "cache"),
           "IVR_PUBLIC_URL": "https://ivr.example.test", "TWILIO_AUTH_TOKEN": "test-auth-token",
           "IVR_METRICS_TOKEN": TOKEN, "IVR_TTS": "off", "IVR_SPEECH_ENGINE": "twilio", "IVR_CAPTURE": "twilio",
           "IVR_BIND": f"127.0.0.1:{port}", "IVR_WORKERS": "2", "IVR_THREADS": "4",
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom")}
    log = open(tmp_path / "gunicorn.log", "w")     # a file: a full pipe would stall the server
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py")], cwd=ROOT,
                              env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 150
    while True:
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=2) as reply:
                if reply.status == 200:
                    break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail("gunicorn did not start:\n" + (tmp_path / "gunicorn.log").read_text()[-3000:])
            time.sleep(0.3)
    yield base, tmp_path / "prom"
    server.terminate()
    server.wait(timeout=30)
    log.close()


@pytest.mark.timeout(300)     # two workers start on a busy machine
def test_metrics_count_every_call_across_two_gunicorn_workers(gunicorn_line):
    from twilio.request_validator import RequestValidator

    base, prom_dir = gunicorn_line
    validator = RequestValidator("test-auth-token")
    placed = 12
    for n in range(placed):
        form = {"CallSid": f"CA{n:032d}", "From": "+13125550123", "To": "+13115550000", "CallStatus": "ringing"}
        data = urllib.parse.urlencode(form).encode()
        signature = validator.compute_signature("https://ivr.example.test/voice/incoming", form)
        # A fresh connection each time, so the master's listening socket hands calls to both workers.
        request = urllib.request.Request(base + "/voice/incoming", data=data,
                                         headers={"X-Twilio-Signature": signature, "Connection": "close"})
        with urllib.request.urlopen(request, timeout=20) as reply:
            assert reply.status == 200
    pids = {path.stem.rsplit("_", 1)[-1] for path in prom_dir.glob("counter_*.db")}
    assert len(pids) == 2, f"expected both workers to have counted; files from {pids}"
    totals = set()
    for _ in range(4):       # whichever worker answers the scrape, the totals are the same
        scrape = urllib.request.Request(base + "/metrics", headers={"Authorization": f"Bearer {TOKEN}",
                                                                    "Connection": "close"})
        with urllib.request.urlopen(scrape, timeout=10) as reply:
            text = reply.read().decode()
        line = next(line for line in text.splitlines() if line.startswith("ivr_calls_total "))
        totals.add(float(line.split()[1]))
        assert "CA0000" not in text and "5550123" not in text
    assert totals == {float(placed)}
