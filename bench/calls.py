"""Concurrent simulated calls against the IVR under gunicorn, compared with a minimal Flask app.

    .venv/bin/python bench/calls.py [--concurrency 100] [--calls 300] [--max-seconds 60]

Starts gunicorn itself (same worker settings for both apps) on free localhost ports, drives
`--concurrency` simultaneous calls — signed webhooks, following the TwiML each answer returns
(Gather → speech from the city's labelled utterances, Dial/Enqueue/Record → their action
callbacks, Redirect) until the call ends — then prints webhook latency p50/p99, calls/s and
requests/s for both apps and the p99 ratio (target: ≤ 1.5 at 100 concurrent calls).
The minimal app answers every webhook with one fixed <Gather>; its calls are cut to the same
number of webhooks as the IVR's average call, so both runs make comparable requests.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parent.parent
UTTERANCES = ROOT.parent / "shared" / "city" / "dev_utterances_en.jsonl"
TOKEN = "bench-auth-token"
MAX_STEPS = 12  # a call that has not ended after this many webhooks is hung up (and counted)

MINIMAL_APP = '''
from flask import Flask, Response
app = Flask(__name__)
TWIML = ('<?xml version="1.0" encoding="UTF-8"?><Response><Gather action="/voice/turn" '
         'input="dtmf speech" speechTimeout="auto"><Say>How can we help?</Say></Gather></Response>')

@app.route("/healthz")
def healthz():
    return "ok"

@app.route("/voice/<path:_rest>", methods=["POST"])
def voice(_rest):
    return Response(TWIML, mimetype="text/xml")
'''


@dataclass
class Stats:
    latencies_ms: list[float] = field(default_factory=list)
    by_path: dict[str, list[float]] = field(default_factory=dict)
    calls: int = 0
    steps: int = 0
    errors: list[str] = field(default_factory=list)
    unfinished: int = 0
    server_cpu_s: float = 0.0   # user+system CPU of the gunicorn workers during the measured run
    lock: threading.Lock = field(default_factory=threading.Lock)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_gunicorn(target: str, port: int, env: dict[str, str], args: argparse.Namespace,
                   cwd: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers",
               str(args.workers), "--worker-class", "gthread", "--threads", str(args.threads),
               "--log-level", "warning", "--timeout", "60", target]
    proc = subprocess.Popen(command, cwd=cwd, env=env)
    deadline = time.monotonic() + 120  # the IVR loads rules, prompts and recognisers at start
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gunicorn {target} exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.3)
    proc.terminate()
    raise SystemExit(f"gunicorn {target} did not answer /healthz within 120 s")


class Caller:
    """One simulated phone: posts signed webhooks and follows the TwiML answers."""

    def __init__(self, port: int, stats: Stats, utterances: list[str], step_cap: int,
                 cut_is_normal: bool) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.validator = RequestValidator(TOKEN)
        self.stats, self.utterances, self.step_cap = stats, utterances, step_cap
        self.cut_is_normal = cut_is_normal  # the minimal app never ends a call by itself

    def post(self, url: str, params: dict[str, str]) -> ET.Element | None:
        absolute = urllib.parse.urljoin(self.base + "/", url)
        path = absolute[len(self.base):]
        body = urllib.parse.urlencode(params)
        headers = {"Content-Type": "application/x-www-form-urlencoded",
                   "X-Twilio-Signature": self.validator.compute_signature(absolute, params)}
        started = time.perf_counter()
        try:
            self.conn.request("POST", path, body=body, headers=headers)
            response = self.conn.getresponse()
            text = response.read()
        except OSError as exc:
            self.conn.close()
            self._error(f"{path}: {type(exc).__name__}")
            return None
        elapsed = (time.perf_counter() - started) * 1000
        with self.stats.lock:
            self.stats.latencies_ms.append(elapsed)
            self.stats.by_path.setdefault(path.split("?")[0], []).append(elapsed)
            self.stats.steps += 1
        if response.status != 200:
            self._error(f"{path}: HTTP {response.status}")
            return None
        try:
            return ET.fromstring(text)
        except ET.ParseError:
            self._error(f"{path}: invalid TwiML")
            return None

    def _error(self, message: str) -> None:
        with self.stats.lock:
            self.stats.errors.append(message)

    def call(self, n: int) -> None:
        sid = "CA" + uuid.uuid4().hex
        base = {"CallSid": sid, "AccountSid": "AC" + "0" * 32, "From": f"+1555{n % 10**7:07d}",
                "To": "+15550003110", "Direction": "inbound"}
        twiml = self.post("/voice/incoming", {**base, "CallStatus": "ringing"})
        steps = 1
        while twiml is not None and steps < self.step_cap:
            nxt = self.next_request(twiml)
            if nxt is None:
                break
            twiml = self.post(nxt[0], {**base, "CallStatus": "in-progress", **nxt[1]})
            steps += 1
        else:
            if twiml is not None and not self.cut_is_normal:
                with self.stats.lock:
                    self.stats.unfinished += 1
        self.post("/voice/status", {**base, "CallStatus": "completed", "CallDuration": "42"})
        with self.stats.lock:
            self.stats.calls += 1

    def next_request(self, twiml: ET.Element) -> tuple[str, dict[str, str]] | None:
        """The webhook Twilio would call after executing `twiml`, or None when the call ends."""
        for verb in twiml:
            if verb.tag == "Gather":
                params = ({"Digits": random.choice("12")} if "speech" not in verb.get("input", "")
                          else {"SpeechResult": random.choice(self.utterances), "Confidence": "0.87"})
                return verb.get("action", "/voice/turn"), params
            if verb.tag == "Redirect":
                return (verb.text or "").strip(), {}
            if verb.tag == "Dial" and verb.get("action"):
                return verb.get("action", ""), {"DialCallStatus": "completed", "DialCallDuration": "30"}
            if verb.tag == "Enqueue" and verb.get("action"):
                return verb.get("action", ""), {"QueueResult": "bridged", "QueueTime": "20"}
            if verb.tag == "Record" and verb.get("action"):
                return verb.get("action", ""), {"RecordingUrl": "https://api.twilio.com/rec/RE1",
                                                "RecordingDuration": "5", "Digits": "hangup"}
            if verb.tag in {"Hangup", "Reject", "Dial", "Enqueue"}:
                return None
        return None


def server_cpu_seconds(master_pid: int) -> float:
    """User+system CPU seconds used so far by the gunicorn workers under `master_pid` (Linux)."""
    total = 0.0
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    for pid in [master_pid, *map(int, children)]:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def drive(port: int, master_pid: int, args: argparse.Namespace, utterances: list[str], step_cap: int,
          cut_is_normal: bool = False) -> tuple[Stats, float]:
    """Run `args.calls` calls, `args.concurrency` at a time; the stats and the seconds taken.

    First `args.warmup` calls run unmeasured: prompts are rendered to audio on first use and
    every worker loads lazily, which is start-up cost, not steady-state latency.
    """
    warm = argparse.Namespace(**{**vars(args), "calls": args.warmup, "concurrency": min(args.concurrency, 8)})
    if args.warmup:
        _run(port, warm, utterances, step_cap, cut_is_normal)
    cpu_before = server_cpu_seconds(master_pid)
    stats, seconds = _run(port, args, utterances, step_cap, cut_is_normal)
    stats.server_cpu_s = server_cpu_seconds(master_pid) - cpu_before
    return stats, seconds


def _run(port: int, args: argparse.Namespace, utterances: list[str], step_cap: int,
         cut_is_normal: bool) -> tuple[Stats, float]:
    stats = Stats()
    counter = iter(range(args.calls))
    counter_lock = threading.Lock()
    deadline = time.monotonic() + args.max_seconds

    def worker() -> None:
        caller = Caller(port, stats, utterances, step_cap, cut_is_normal)
        while time.monotonic() < deadline:
            with counter_lock:
                n = next(counter, None)
            if n is None:
                return
            caller.call(n)

    threads = [threading.Thread(target=worker) for _ in range(args.concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return stats, time.perf_counter() - started


def percentiles(values: list[float]) -> tuple[float, float]:
    """(p50, p99) of `values` in the units given."""
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def report(name: str, stats: Stats, seconds: float, per_path: bool = False) -> float:
    """Print one app's numbers; return its p99 in ms."""
    lat = stats.latencies_ms
    if not lat:
        print(f"{name:8s} no successful requests; errors: {stats.errors[:3]}")
        return float("nan")
    p50, p99 = percentiles(lat)
    print(f"{name:8s} webhooks={len(lat):6d}  p50={p50:7.1f} ms  p99={p99:7.1f} ms  "
          f"calls/s={stats.calls / seconds:6.1f}  req/s={stats.steps / seconds:6.1f}  "
          f"webhooks/call={stats.steps / max(stats.calls, 1):.1f}  errors={len(stats.errors)}  "
          f"unfinished={stats.unfinished}  server CPU/webhook={stats.server_cpu_s * 1000 / max(stats.steps, 1):.2f} ms")
    for message in sorted(set(stats.errors))[:5]:
        print(f"         error: {message} (×{stats.errors.count(message)})")
    for path, values in sorted(stats.by_path.items()) if per_path else ():
        path_p50, path_p99 = percentiles(values)
        print(f"         {path:24s} n={len(values):5d}  p50={path_p50:7.1f} ms  p99={path_p99:7.1f} ms")
    return p99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=100, help="simultaneous calls")
    parser.add_argument("--calls", type=int, default=300, help="calls in total per app")
    parser.add_argument("--warmup", type=int, default=30, help="unmeasured calls first")
    parser.add_argument("--max-seconds", type=float, default=60, help="stop starting calls after this")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=16, help="gunicorn threads per worker")
    parser.add_argument("--database-url", default="", help="default: a fresh SQLite file")
    args = parser.parse_args()
    utterances = [json.loads(line)["text"] for line in UTTERANCES.read_text().splitlines() if line.strip()]

    with tempfile.TemporaryDirectory(prefix="ivr-bench-") as tmp:
        ivr_port, minimal_port = free_port(), free_port()
        env = {**os.environ, "TWILIO_AUTH_TOKEN": TOKEN, "IVR_PUBLIC_URL": f"http://127.0.0.1:{ivr_port}",
               "IVR_DATABASE_URL": args.database_url or f"sqlite:///{tmp}/bench.sqlite3",
               "IVR_CAPTURE": os.environ.get("IVR_CAPTURE", "twilio"),
               "IVR_SPEECH_ENGINE": os.environ.get("IVR_SPEECH_ENGINE", "twilio")}
        print(f"# {args.concurrency} concurrent calls, {args.calls} per app, gunicorn "
              f"{args.workers} workers × {args.threads} threads, {os.cpu_count()} CPUs, "
              f"db={'postgresql' if 'postgres' in env['IVR_DATABASE_URL'] else 'sqlite'}")
        server = start_gunicorn("app:app", ivr_port, env, args, ROOT)
        try:
            ivr_stats, ivr_seconds = drive(ivr_port, server.pid, args, utterances, MAX_STEPS)
        finally:
            server.terminate()
            server.wait(timeout=30)
        per_call = max(1, round(ivr_stats.steps / max(ivr_stats.calls, 1)) - 1)  # minus the status callback
        Path(tmp, "minimal_app.py").write_text(MINIMAL_APP)
        minimal = start_gunicorn("minimal_app:app", minimal_port,
                                 {**env, "IVR_PUBLIC_URL": f"http://127.0.0.1:{minimal_port}"}, args, Path(tmp))
        try:
            minimal_stats, minimal_seconds = drive(minimal_port, minimal.pid, args, utterances, per_call, cut_is_normal=True)
        finally:
            minimal.terminate()
            minimal.wait(timeout=30)
    ivr_p99 = report("ivr", ivr_stats, ivr_seconds, per_path=True)
    minimal_p99 = report("minimal", minimal_stats, minimal_seconds)
    print(f"p99 ratio ivr/minimal = {ivr_p99 / minimal_p99:.2f} (target ≤ 1.50)")


if __name__ == "__main__":
    main()
