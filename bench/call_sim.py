"""The callers of bench/calls.py and bench/webhook_cpu.py: the project's Twilio simulator
(`ivr.telephony.simulator`), timed. Nothing here starts servers.
"""
from __future__ import annotations

import random
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from twilio.request_validator import RequestValidator

from ivr.telephony.simulator import Reply, SimulatedCall, SimulatorError, Transport

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
    #: Twilio's GETs of render-on-fetch <Play> URLs (prompts not rendered yet): not webhooks.
    prompt_fetches_ms: list[float] = field(default_factory=list)
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
    #: The server's write-turn histograms for this run (bench/calls.py `turn_histograms`), if counted.
    write_turn: dict[str, dict[str, float]] = field(default_factory=dict)
    #: Each call's webhooks as sent, by call number (`Caller` fills it): what `Replayer` sends again.
    scripts: dict[int, list["Step"]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, other: "Stats") -> None:
        """Count `other` (a later round of the same app) in these numbers too."""
        self.latencies_ms += other.latencies_ms
        self.app_ms += other.app_ms
        for path, values in other.by_path.items():
            self.by_path.setdefault(path, []).extend(values)
        self.prompt_fetches_ms += other.prompt_fetches_ms
        self.errors += other.errors
        for name in ("calls", "steps", "unfinished", "rescued", "cut", "seconds", "server_cpu_s", "client_cpu_s"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for kind, values in other.write_turn.items():
            mine = self.write_turn.setdefault(kind, {})
            for key, value in values.items():
                mine[key] = mine.get(key, 0.0) + value
        # Per process, busiest first in each round: summed by rank (the busiest worker of each round).
        ranks = max(len(self.worker_cpu_s), len(other.worker_cpu_s))
        padded = [self.worker_cpu_s + [0.0] * (ranks - len(self.worker_cpu_s)),
                  other.worker_cpu_s + [0.0] * (ranks - len(other.worker_cpu_s))]
        self.worker_cpu_s = [a + b for a, b in zip(*padded)]


@dataclass(frozen=True)
class Step:
    """One webhook of a recorded call: the caller's pause before it (0: Twilio's follow-up at
    once, e.g. a <Dial>'s whisper and the status callback) and the request as it was sent."""
    pause_s: float
    method: str
    url: str
    form: Mapping[str, str] | None


@dataclass(frozen=True)
class Plan:
    """How one run drives calls: think time between webhooks (0 = closed loop) and its bounds."""
    concurrency: int
    calls: int                   # at most this many calls are started
    start_for_s: float           # no call starts after this
    deadline_s: float            # every caller stops here, mid-call if need be
    think: tuple[float, float] = (0.0, 0.0)


class TimedTransport:
    """A simulator transport that records each webhook's latency (and the app's own time) in `stats`."""

    def __init__(self, inner: Transport, stats: Stats) -> None:
        self.inner, self.stats = inner, stats
        self.script: list[Step] | None = None   # recording the current call's webhooks when a list
        self.paused_s = 0.0                     # the caller's pause since the last webhook

    def request(self, method: str, url: str, form: Any, headers: Any) -> Reply:
        path = urllib.parse.urlsplit(url).path
        if self.script is not None:
            self.script.append(Step(self.paused_s, method, url, dict(form) if form is not None else None))
        self.paused_s = 0.0
        started = time.perf_counter()
        try:
            reply = self.inner.request(method, url, form, headers)
        except (OSError, SimulatorError) as exc:
            self._error(f"{path}: {type(exc).__name__}")
            raise
        elapsed = (time.perf_counter() - started) * 1000
        app_ms = reply.headers.get(APP_TIME_HEADER)
        with self.stats.lock:
            self.stats.latencies_ms.append(elapsed)
            self.stats.by_path.setdefault(path, []).append(elapsed)
            self.stats.steps += 1
            if app_ms:
                self.stats.app_ms.append(float(app_ms))
        if reply.status_code != 200:
            self._error(f"{path}: HTTP {reply.status_code}")
        elif method == "POST" and b"say=" in reply.data:
            self._fetch_new_prompts(reply.data)
        return reply

    def _fetch_new_prompts(self, twiml: bytes) -> None:
        """GET every render-on-fetch <Play> URL, as Twilio does before playing it, so the server's
        whole cost is measured (the render it does for the URL). Fixed prompts' URLs are not
        fetched: Twilio's caching proxy serves them once it has them."""
        try:
            urls = [(play.text or "").strip() for play in ET.fromstring(twiml).iter("Play")]
        except ET.ParseError:
            return
        for url in (u for u in urls if "say=" in urllib.parse.urlsplit(u).query):
            started = time.perf_counter()
            try:
                audio = self.inner.request("GET", url, None, {})
            except (OSError, SimulatorError) as exc:
                self._error(f"prompt fetch: {type(exc).__name__}")
                continue
            with self.stats.lock:
                self.stats.prompt_fetches_ms.append((time.perf_counter() - started) * 1000)
            if audio.status_code != 200 or audio.mimetype != "audio/wav":
                self._error(f"prompt fetch: HTTP {audio.status_code} {audio.mimetype}")

    def _error(self, message: str) -> None:
        with self.stats.lock:
            self.stats.errors.append(message)


class Caller:
    """One simulated phone after another (`ivr.telephony.simulator`), over one transport."""

    def __init__(self, transport: Transport, public_url: str, stats: Stats, utterances: list[str], step_cap: int,
                 cut_is_normal: bool, plan: Plan, deadline: float) -> None:
        self.transport = TimedTransport(transport, stats)
        self.public_url = public_url
        self.stats, self.utterances, self.step_cap = stats, utterances, step_cap
        self.cut_is_normal = cut_is_normal  # the minimal app never ends a call by itself
        self.plan, self.deadline = plan, deadline

    def _think(self) -> bool:
        """Wait like a caller listening and answering; False when the run's deadline came first."""
        pause = random.uniform(*self.plan.think)
        if time.monotonic() + pause >= self.deadline:
            return False
        if pause:
            time.sleep(pause)
        self.transport.paused_s += pause
        return True

    def _answer(self, kind: str, _call: SimulatedCall) -> str:
        return random.choice(self.utterances) if kind == "speech" else random.choice("12")

    def call(self, n: int) -> None:
        """One call from ringing to the status callback (or until the run's deadline)."""
        call = SimulatedCall(self.transport, token=TOKEN, public_url=self.public_url,
                             from_=f"+1555{n % 10**7:07d}", to="+15550003110")
        script: list[Step] = []
        self.transport.script, self.transport.paused_s = script, 0.0
        try:
            ended = call.run(self._answer, max_steps=self.step_cap, pause=self._think)
        except (OSError, SimulatorError):
            return   # counted by the transport
        finally:
            self.transport.script = None
            with self.stats.lock:
                self.stats.scripts[n] = script
        with self.stats.lock:
            if ended == "cut":
                self.stats.cut += 1
                return
            self.stats.calls += 1
            if ended.startswith("stopped after") and not self.cut_is_normal:
                self.stats.unfinished += 1
            dial = call.doc.find("Dial") if call.doc is not None else None
            if dial is not None and not dial.get("action") and not self.cut_is_normal:
                # A <Dial> without an action is the IVR's rescue answer (safe_webhook): the
                # webhook failed. It is valid TwiML, so only this count shows the failure.
                self.stats.rescued += 1


class Replayer:
    """Sends recorded calls (`Stats.scripts` of a `Caller` run) again, to another server: the same
    webhooks, with the same pauses before each, so a second app gets exactly the first one's
    requests at the first one's pace (bench/calls.py: the minimal app gets the IVR's calls).

    Each webhook is signed afresh and its answer parsed as TwiML, as `SimulatedCall` does, so the
    client's own work per webhook (it shares the cores with the server) stays the same too.
    """

    def __init__(self, transport: Transport, public_url: str, stats: Stats, scripts: list[list[Step]],
                 deadline: float) -> None:
        if not scripts:
            raise ValueError("nothing to replay: the recorded run made no calls")
        self.transport = TimedTransport(transport, stats)
        self.public_url = public_url.rstrip("/")
        self.stats, self.scripts, self.deadline = stats, scripts, deadline
        self.validator = RequestValidator(TOKEN)

    def call(self, n: int) -> None:
        """Recorded call `n` (cycling through the recording when more calls are asked for)."""
        for step in self.scripts[n % len(self.scripts)]:
            if step.pause_s:
                if time.monotonic() + step.pause_s >= self.deadline:
                    with self.stats.lock:
                        self.stats.cut += 1
                    return
                time.sleep(step.pause_s)
            parts = urllib.parse.urlsplit(step.url)
            url = f"{self.public_url}{parts.path}" + (f"?{parts.query}" if parts.query else "")
            headers = {"X-Twilio-Signature": self.validator.compute_signature(url, dict(step.form or {}))}
            try:
                reply = self.transport.request(step.method, url, step.form, headers)
            except (OSError, SimulatorError):
                return   # counted by the transport
            if reply.status_code == 200 and reply.mimetype in ("text/xml", "application/xml"):
                try:
                    ET.fromstring(reply.data)
                except ET.ParseError:
                    self.transport._error(f"{parts.path}: invalid TwiML")
        with self.stats.lock:
            self.stats.calls += 1
