"""Concurrent simulated calls against the IVR under gunicorn, compared with a minimal Flask app.

    .venv/bin/python bench/calls.py [--concurrency 100] [--mode both|paced|closed]
        [--think 1-3] [--duration 40] [--calls 300] [--workers 2] [--threads 8]
        [--database-url postgresql+psycopg2://postgres@127.0.0.1:5432/test]

Starts gunicorn itself (identical settings for both apps) on free 127.0.0.1 ports and drives
`--concurrency` simultaneous calls with one client: signed webhooks, following the TwiML each
answer returns (Gather → speech from the city's labelled utterances, Dial/Enqueue/Record →
their action callbacks, Redirect) until the call ends, then the status callback.

Two modes, each printing webhook latency p50/p99, calls/s, requests/s and server CPU per
webhook for both apps, and the p99 ratio (target ≤ 1.5 at 100 concurrent calls):
- paced (the headline): like real callers, each call waits a think time (uniform in
  `--think`, default 1-3 s: the prompt plays, the caller speaks) between its webhooks. Calls
  start during `--duration` seconds; calls still running `--drain` seconds later are cut.
- closed: no pause between webhooks (saturation: what the server can take), `--calls` calls.
The minimal app answers every webhook with one fixed <Gather>; its calls are cut to the IVR's
average number of webhooks per call, so both apps get the same requests at the same pace.
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
    """What one run of calls measured (filled by many caller threads, under `lock`)."""
    latencies_ms: list[float] = field(default_factory=list)
    by_path: dict[str, list[float]] = field(default_factory=dict)
    calls: int = 0
    steps: int = 0
    errors: list[str] = field(default_factory=list)
    unfinished: int = 0          # IVR calls still going after MAX_STEPS webhooks
    cut: int = 0                 # calls abandoned at the run's hard deadline
    seconds: float = 0.0
    server_cpu_s: float = 0.0    # user+system CPU of gunicorn (master + workers) during the run
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True)
class Plan:
    """How one run drives calls: think time between webhooks (0 = closed loop) and its bounds."""
    concurrency: int
    calls: int                   # at most this many calls are started
    start_for_s: float           # no call starts after this
    deadline_s: float            # every caller stops here, mid-call if need be
    think: tuple[float, float] = (0.0, 0.0)


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_gunicorn(target: str, port: int, env: dict[str, str], args: argparse.Namespace,
                   cwd: Path) -> subprocess.Popen[bytes]:
    """gunicorn serving `target` on 127.0.0.1:`port`, once /healthz answers 200."""
    command = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers",
               str(args.workers), "--worker-class", args.worker_class, "--threads", str(args.threads),
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
                 cut_is_normal: bool, plan: Plan, deadline: float) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.validator = RequestValidator(TOKEN)
        self.stats, self.utterances, self.step_cap = stats, utterances, step_cap
        self.cut_is_normal = cut_is_normal  # the minimal app never ends a call by itself
        self.plan, self.deadline = plan, deadline

    def _send(self, path: str, body: str, headers: dict[str, str]) -> tuple[int, bytes]:
        try:
            self.conn.request("POST", path, body=body, headers=headers)
            response = self.conn.getresponse()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            # The server closed the idle keep-alive connection while the caller "listened";
            # any HTTP client reconnects then. The request never reached the app.
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            self.conn.request("POST", path, body=body, headers=headers)
            response = self.conn.getresponse()
        return response.status, response.read()

    def post(self, url: str, params: dict[str, str]) -> ET.Element | None:
        """POST one signed webhook; the parsed TwiML, or None after recording an error."""
        absolute = urllib.parse.urljoin(self.base + "/", url)
        path = absolute[len(self.base):]
        body = urllib.parse.urlencode(params)
        headers = {"Content-Type": "application/x-www-form-urlencoded",
                   "X-Twilio-Signature": self.validator.compute_signature(absolute, params)}
        started = time.perf_counter()
        try:
            status, text = self._send(path, body, headers)
        except OSError as exc:
            self.conn.close()
            self._error(f"{path.split('?')[0]}: {type(exc).__name__}")
            return None
        elapsed = (time.perf_counter() - started) * 1000
        with self.stats.lock:
            self.stats.latencies_ms.append(elapsed)
            self.stats.by_path.setdefault(path.split("?")[0], []).append(elapsed)
            self.stats.steps += 1
        if status != 200:
            self._error(f"{path.split('?')[0]}: HTTP {status}")
            return None
        try:
            return ET.fromstring(text)
        except ET.ParseError:
            self._error(f"{path.split('?')[0]}: invalid TwiML")
            return None

    def _error(self, message: str) -> None:
        with self.stats.lock:
            self.stats.errors.append(message)

    def _think(self) -> bool:
        """Wait like a caller listening and answering; False when the run's deadline came first."""
        pause = random.uniform(*self.plan.think)
        if time.monotonic() + pause >= self.deadline:
            return False
        time.sleep(pause)
        return True

    def call(self, n: int) -> None:
        """One call from ringing to the status callback (or until the run's deadline)."""
        sid = "CA" + uuid.uuid4().hex
        base = {"CallSid": sid, "AccountSid": "AC" + "0" * 32, "From": f"+1555{n % 10**7:07d}",
                "To": "+15550003110", "Direction": "inbound"}
        twiml = self.post("/voice/incoming", {**base, "CallStatus": "ringing"})
        steps = 1
        while twiml is not None and steps < self.step_cap:
            nxt = self.next_request(twiml)
            if nxt is None:
                break
            if not self._think():
                with self.stats.lock:
                    self.stats.cut += 1
                return
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
    """User+system CPU seconds used so far by gunicorn's master and workers (Linux /proc)."""
    total = 0.0
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    for pid in [master_pid, *map(int, children)]:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def run(port: int, master_pid: int, plan: Plan, utterances: list[str], step_cap: int,
        cut_is_normal: bool = False) -> Stats:
    """Drive calls per `plan`, `plan.concurrency` at a time, and measure them."""
    stats = Stats()
    counter = iter(range(plan.calls))
    counter_lock = threading.Lock()
    started = time.monotonic()
    stop_starting, deadline = started + plan.start_for_s, started + plan.deadline_s

    def worker() -> None:
        caller = Caller(port, stats, utterances, step_cap, cut_is_normal, plan, deadline)
        if plan.think[1] > 0:
            time.sleep(random.uniform(0, plan.think[1]))  # callers ring at different moments
        while time.monotonic() < stop_starting:
            with counter_lock:
                n = next(counter, None)
            if n is None:
                return
            caller.call(n)

    cpu_before = server_cpu_seconds(master_pid)
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(plan.concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats.seconds = time.monotonic() - started
    stats.server_cpu_s = server_cpu_seconds(master_pid) - cpu_before
    return stats


def percentiles(values: list[float]) -> tuple[float, float]:
    """(p50, p99) of `values` in the units given (nearest rank)."""
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def report(name: str, stats: Stats, per_path: bool = False) -> float:
    """Print one app's numbers; return its p99 in ms."""
    lat = stats.latencies_ms
    if not lat:
        print(f"  {name:8s} no successful requests; errors: {stats.errors[:3]}")
        return float("nan")
    p50, p99 = percentiles(lat)
    print(f"  {name:8s} webhooks={len(lat):6d}  p50={p50:7.1f} ms  p99={p99:7.1f} ms  "
          f"calls/s={stats.calls / stats.seconds:6.1f}  req/s={stats.steps / stats.seconds:6.1f}  "
          f"webhooks/call={stats.steps / max(stats.calls, 1):.1f}  server CPU/webhook="
          f"{stats.server_cpu_s * 1000 / max(stats.steps, 1):.2f} ms  errors={len(stats.errors)}  "
          f"unfinished={stats.unfinished}  cut={stats.cut}")
    for message in sorted(set(stats.errors))[:5]:
        print(f"           error: {message} (×{stats.errors.count(message)})")
    for path, values in sorted(stats.by_path.items()) if per_path else ():
        path_p50, path_p99 = percentiles(values)
        print(f"           {path:24s} n={len(values):5d}  p50={path_p50:7.1f} ms  p99={path_p99:7.1f} ms")
    return p99


def plans(args: argparse.Namespace) -> dict[str, Plan]:
    """The runs `--mode` asks for, by name."""
    low, _, high = args.think.partition("-")
    think = (float(low), float(high or low))
    if not 0 <= think[0] <= think[1] <= 30:
        raise SystemExit(f"--think must look like 1-3 (seconds, 0..30), got {args.think!r}")
    chosen = {
        "paced": Plan(args.concurrency, 100_000, args.duration, args.duration + args.drain, think),
        "closed": Plan(args.concurrency, args.calls, args.max_seconds, args.max_seconds + 30),
    }
    return {name: plan for name, plan in chosen.items() if args.mode in (name, "both")}


def bench_app(target: str, port: int, env: dict[str, str], cwd: Path, args: argparse.Namespace,
              utterances: list[str], step_caps: dict[str, int] | None = None) -> dict[str, Stats]:
    """Start one app under gunicorn, warm it up, run every plan against it, stop it."""
    server = start_gunicorn(target, port, env, args, cwd)
    results: dict[str, Stats] = {}
    try:
        # Unmeasured: prompts render to audio on first use and every worker loads lazily.
        warm = Plan(min(args.concurrency, 8), args.warmup, 60, 90)
        run(port, server.pid, warm, utterances, MAX_STEPS, cut_is_normal=step_caps is not None)
        for name, plan in plans(args).items():
            cap = step_caps[name] if step_caps else MAX_STEPS
            results[name] = run(port, server.pid, plan, utterances, cap, cut_is_normal=step_caps is not None)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=100, help="simultaneous calls")
    parser.add_argument("--mode", choices=("both", "paced", "closed"), default="both")
    parser.add_argument("--think", default="1-3", help="paced: seconds between a call's webhooks, MIN-MAX")
    parser.add_argument("--duration", type=float, default=40, help="paced: seconds during which calls start")
    parser.add_argument("--drain", type=float, default=30, help="paced: seconds more before running calls are cut")
    parser.add_argument("--calls", type=int, default=300, help="closed: calls in total per app")
    parser.add_argument("--max-seconds", type=float, default=60, help="closed: stop starting calls after this")
    parser.add_argument("--warmup", type=int, default=30, help="unmeasured calls first (closed loop)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=8, help="gunicorn threads per worker")
    parser.add_argument("--worker-class", default="gthread", help="gunicorn worker class")
    parser.add_argument("--database-url", default="", help="default: a fresh SQLite file")
    args = parser.parse_args()
    if not 1 <= args.concurrency <= 1000 or args.duration > 600 or args.max_seconds > 600:
        raise SystemExit("--concurrency must be 1..1000; --duration and --max-seconds at most 600")
    plans(args)  # check --think before starting anything
    utterances = [json.loads(line)["text"] for line in UTTERANCES.read_text().splitlines() if line.strip()]

    with tempfile.TemporaryDirectory(prefix="ivr-bench-") as tmp:
        ivr_port, minimal_port = free_port(), free_port()
        env = {**os.environ, "TWILIO_AUTH_TOKEN": TOKEN, "IVR_PUBLIC_URL": f"http://127.0.0.1:{ivr_port}",
               "IVR_DATABASE_URL": args.database_url or f"sqlite:///{tmp}/bench.sqlite3",
               "IVR_CAPTURE": os.environ.get("IVR_CAPTURE", "twilio"),
               "IVR_SPEECH_ENGINE": os.environ.get("IVR_SPEECH_ENGINE", "twilio")}
        print(f"# {args.concurrency} concurrent calls; gunicorn {args.workers} workers × {args.threads} "
              f"threads ({args.worker_class}); {os.cpu_count()} CPUs; load average "
              f"{os.getloadavg()[0]:.2f} at start; db="
              f"{'postgresql' if 'postgres' in env['IVR_DATABASE_URL'] else 'sqlite'}", flush=True)
        ivr = bench_app("app:app", ivr_port, env, ROOT, args, utterances)
        # Minus the status callback, which the minimal app's calls make too.
        caps = {name: max(1, round(stats.steps / max(stats.calls, 1)) - 1) for name, stats in ivr.items()}
        Path(tmp, "minimal_app.py").write_text(MINIMAL_APP)
        minimal = bench_app("minimal_app:app", minimal_port, {**env, "IVR_PUBLIC_URL": f"http://127.0.0.1:{minimal_port}"},
                            Path(tmp), args, utterances, step_caps=caps)
    for name, plan in plans(args).items():
        pace = f"think {plan.think[0]:g}-{plan.think[1]:g} s" if plan.think[1] else "no think time"
        print(f"{name} ({pace}):")
        ivr_p99 = report("ivr", ivr[name], per_path=True)
        minimal_p99 = report("minimal", minimal[name])
        print(f"  p99 ratio ivr/minimal = {ivr_p99 / minimal_p99:.2f} (target ≤ 1.50)  "
              f"load average now {os.getloadavg()[0]:.2f}", flush=True)


if __name__ == "__main__":
    main()
