"""The production start: gunicorn with the repository's gunicorn.conf.py serves whole calls.

Starts `gunicorn -c gunicorn.conf.py` (the README's command) on a free port with SQLite and
places calls through it with `ivr call`, which signs every webhook as Twilio does and speaks the
Media Streams protocol over the websocket. Two workers, so one call's webhooks and stream land
on different processes, as in production.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from twilio.request_validator import RequestValidator

from ivr.cli import cli

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "gunicorn-test-token"
pytestmark = pytest.mark.timeout(300)     # two workers each load the recognisers on a busy CI machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def always_open_rules(tmp_path: Path) -> Path:
    """The shipped rules with every desk open around the clock, so a call's outcome does not
    depend on when the test runs."""
    rules = yaml.safe_load((ROOT / "routing_rules.yaml").read_text(encoding="utf-8"))
    rules["defaults"]["hours"] = {"mon-sun": "00:00-24:00"}
    rules["defaults"].pop("holidays", None)
    for department in rules["departments"].values():
        department.pop("hours", None)
        department.pop("closures", None)
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rules, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def line(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gunicorn")
    port = free_port()
    env = {**os.environ,
           "IVR_DATABASE_URL": f"sqlite:///{tmp / 'ivr.sqlite3'}",
           "IVR_RULES_PATH": str(always_open_rules(tmp)),
           "IVR_PROMPT_CACHE_DIR": str(tmp / "prompt-cache"),
           "IVR_JOBS_DB": str(tmp / "jobs.sqlite3"),
           "IVR_TTS": "off",
           "IVR_PUBLIC_URL": "",                 # sign against the URL called, like `make run`
           "TWILIO_AUTH_TOKEN": TOKEN,
           "IVR_WORKERS": "2", "IVR_THREADS": "8"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = open(tmp / "gunicorn.log", "w+")
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"),
                               "--bind", f"127.0.0.1:{port}"],
                              cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=5) as answer:
                if answer.status == 200:
                    break
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            log.seek(0)
            pytest.fail(f"gunicorn did not come up:\n{log.read()[-4000:]}")
        time.sleep(0.5)
    yield {"url": url, "tmp": tmp, "log": log, "db": env["IVR_DATABASE_URL"]}
    os.killpg(server.pid, signal.SIGTERM)          # graceful stop: master and workers
    try:
        server.wait(timeout=40)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
    log.close()


def test_the_config_is_what_the_readme_runs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "gunicorn -c gunicorn.conf.py" in readme


def test_a_whole_call_over_a_media_stream_reaches_the_department(line):
    result = CliRunner().invoke(cli, ["call", "--url", line["url"], "--token", TOKEN,
                                      "--say", "1", "--say", "9", "--say", "1", "--say", "1"])
    assert result.exit_code == 0, result.output
    assert "Connecting you to Streets and Roads" in result.output
    assert "agent hears: City line call for Streets and Roads" in result.output
    assert "call ended: connected to +13125550101" in result.output
    # The call was stored by the workers, with its story, in the SQLite database.
    story = CliRunner().invoke(cli, ["calls", "--url", line["db"]])
    assert story.exit_code == 0 and "roads" in story.output, story.output


def test_several_calls_at_once_across_the_workers(line):
    """Concurrent calls, so both workers answer; each call gets its own right answer."""
    from concurrent.futures import ThreadPoolExecutor

    def call(_):
        return subprocess.run([str(Path(sys.executable).parent / "ivr"), "call", "--url", line["url"], "--token", TOKEN,
                               "--say", "1", "--say", "0"], capture_output=True, text=True, timeout=240)

    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(call, range(3)))
    for result in results:
        assert result.returncode == 0, result.stdout + result.stderr
        assert "call ended: waiting in queue 'operator'" in result.stdout, result.stdout


def test_a_forged_webhook_is_refused_through_gunicorn(line):
    url = f"{line['url']}/voice/incoming"
    params = {"CallSid": "CA" + "f" * 32, "From": "+13125550123", "To": "+13125550311", "CallStatus": "ringing"}
    body = urllib.parse.urlencode(params).encode()
    forged = RequestValidator("not-the-token").compute_signature(url, params)
    request = urllib.request.Request(url, data=body, headers={"X-Twilio-Signature": forged})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 403
    signed = RequestValidator(TOKEN).compute_signature(url, params)
    request = urllib.request.Request(url, data=body, headers={"X-Twilio-Signature": signed})
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 200 and b"<Response>" in answer.read()


def test_the_metrics_directory_is_made_for_the_workers(line):
    line["log"].flush()
    text = (line["tmp"] / "gunicorn.log").read_text()
    assert "prometheus multiprocess directory:" in text
    assert "Booting worker" in text and text.count("Booting worker") >= 2
