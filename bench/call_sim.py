"""The simulated callers of bench/calls.py: signed webhooks that follow the TwiML answers.

Kept apart from the benchmark driver so each stays readable; nothing here starts servers.
"""
from __future__ import annotations

import http.client
import os
import random
import threading
import time
import urllib.parse
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from twilio.request_validator import RequestValidator

TOKEN = "bench-auth-token"
#: Set by bench/calls.py's WSGI wrapper: milliseconds the request spent inside the app, so the
#: client's latency can be split into the app's work and everything around it (queues, CPU).
APP_TIME_HEADER = "X-Bench-App-Ms"


@dataclass
class Stats:
    """What one run of calls measured (filled by many caller threads, under `lock`)."""
    latencies_ms: list[float] = field(default_factory=list)
    app_ms: list[float] = field(default_factory=list)   # time inside the WSGI app (APP_TIME_HEADER)
    by_path: dict[str, list[float]] = field(default_factory=dict)
    calls: int = 0
    steps: int = 0
    errors: list[str] = field(default_factory=list)
    unfinished: int = 0          # IVR calls still going after MAX_STEPS webhooks
    rescued: int = 0             # answers that were the operator fallback (a webhook failed)
    cut: int = 0                 # calls abandoned at the run's hard deadline
    seconds: float = 0.0
    server_cpu_s: float = 0.0    # user+system CPU of gunicorn (master + workers) during the run
    worker_cpu_s: list[float] = field(default_factory=list)   # the same per process, busiest first
    client_cpu_s: float = 0.0    # this benchmark's own CPU: it shares the machine's cores
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True)
class Plan:
    """How one run drives calls: think time between webhooks (0 = closed loop) and its bounds."""
    concurrency: int
    calls: int                   # at most this many calls are started
    start_for_s: float           # no call starts after this
    deadline_s: float            # every caller stops here, mid-call if need be
    think: tuple[float, float] = (0.0, 0.0)


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
        self.app_ms: float | None = None   # APP_TIME_HEADER of the last answer, when sent

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
        header = response.getheader(APP_TIME_HEADER)
        self.app_ms = float(header) if header else None
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
            if self.app_ms is not None:
                self.stats.app_ms.append(self.app_ms)
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
            if verb.tag == "Dial" and not self.cut_is_normal:
                # A <Dial> without an action is the IVR's rescue answer (safe_webhook): the
                # webhook failed. It is valid TwiML, so only this count shows the failure.
                with self.stats.lock:
                    self.stats.rescued += 1
            if verb.tag in {"Hangup", "Reject", "Dial", "Enqueue"}:
                return None
        return None


def server_cpu_seconds(master_pid: int) -> dict[int, float]:
    """User+system CPU seconds used so far by gunicorn's master and each worker, by pid (Linux)."""
    used: dict[int, float] = {}
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    for pid in [master_pid, *map(int, children)]:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        used[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return used
