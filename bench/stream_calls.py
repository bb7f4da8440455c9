"""Many callers at once over Media Streams, against the production server, driven as Twilio drives it.

    .venv/bin/python bench/stream_calls.py [--callers 1,20] [--calls 2] [--engine auto,pocketsphinx]

For each engine it starts the README's production command (`gunicorn -c gunicorn.conf.py`, through
bench/serve.py) on a free local port, with a fresh SQLite database and the prompts rendered, so the
stream plays them and callers can barge in.
Then, for each caller count N, N simulated phones call at once (starts spread over 2 s):

- a signed `POST /voice/incoming`, then whatever the TwiML says, as Twilio would: `<Connect><Stream>`
  opens the signed websocket and sends `connected` and `start` with the `<Parameter>`s; outbound
  audio is "played" in real time and each `mark` echoed once played (a `clear` drops the rest);
  when the stream closes, the `<Connect action>` is posted; `<Redirect>` is followed; a `<Gather>`
  for keys gets `0`; `<Dial>`, `<Enqueue>`, `<Record>`, `<Hangup>` end the call (status callback);
- the caller listens to the prompt (every third turn talks over it after 1 s instead: barge-in),
  then says a labelled utterance (piper, 8 kHz μ-law, 20 ms frames paced in real time), and keeps
  sending line silence until the server closes the stream; at a yes/no question it says "yes".

Printed per run: turns; decided in the stream (the server closed it within 5 s of the last word);
last word → stream closed and last word → next TwiML (median, p90, max); calls routed to the
labelled department (from the call database afterwards); barge-ins cleared; connection resets and
other errors; "database is locked" and server errors in the log; resident memory per worker;
`uptime` before and after. Utterances: bench/data/heldout_en.jsonl (written apart from the dev
set; never tuned on here).

Targets (issue 9): 1 caller median ≤ 450 ms (goal 300); 20 callers: every turn decided in the
stream, ≥ 90 % routed right, p90 ≤ 1.0 s.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from serve import GUNICORN, Gunicorn, free_port  # noqa: E402

from ivr.telephony.simulator import HttpTransport, MediaStream, SimulatedCall, SimulatorError  # noqa: E402
from tests.speechgen import last_voice_ms, phone_pcm, synthesize_phone_audio  # noqa: E402

TOKEN = "bench-auth-token"
UTTERANCES = ROOT / "bench" / "data" / "heldout_en.jsonl"
#: The server must close the stream this soon after the caller's last word, or the turn was not
#: decided in the stream (the caller would be left talking into silence).
DECIDED_WITHIN_S = 5.0
MAX_STEPS = 8
BIN = Path(sys.executable).parent


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


@dataclass
class Run:
    """What one run measured (many caller threads add to it under `lock`)."""
    closed_ms: list[float] = field(default_factory=list)     # last word → stream closed
    decided_ms: list[float] = field(default_factory=list)    # last word → next TwiML received
    turns: int = 0
    undecided: int = 0
    barge_ins: int = 0
    cleared: int = 0
    resets: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    calls: dict[str, dict] = field(default_factory=dict)     # sid → labelled row
    webhook_ms: list[float] = field(default_factory=list)    # a new call's first webhook, while streams run
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, **values) -> None:
        with self.lock:
            for name, value in values.items():
                attr = getattr(self, name)
                attr.append(value) if isinstance(attr, list) else setattr(self, name, attr + value)


class Phone:
    """One simulated caller placing one call through the real server."""

    def __init__(self, base: str, run: Run, row: dict, index: int, audio: dict[str, bytes]) -> None:
        self.base, self.run, self.row, self.index, self.audio = base, run, row, index, audio
        self.sim = SimulatedCall(HttpTransport(base, timeout=20), token=TOKEN, public_url=base,
                                 from_=f"+1555{index:07d}", to="+15550003110")
        self.sid = self.sim.sid
        self.turn_no = 0

    def post(self, url: str, params: dict[str, str]) -> ET.Element | None:
        """POST a signed webhook through the simulator; its TwiML, or None after counting a failure."""
        path = urllib.parse.urlparse(url).path
        try:
            reply = self.sim.post(url, self.sim.params(**params))
        except (ConnectionError, SimulatorError, OSError) as exc:
            kind = "resets" if isinstance(exc, ConnectionError) or "reset" in str(exc).lower() else "errors"
            self.run.add(**{kind: f"POST {path}: {type(exc).__name__}"})
            return None
        if reply.status_code != 200:
            self.run.add(errors=f"POST {path}: HTTP {reply.status_code}")
            return None
        return self.sim.doc

    def call(self) -> None:
        with self.run.lock:
            self.run.calls[self.sid] = self.row
        twiml = self.post(self.base + "/voice/incoming", {"CallStatus": "ringing"})
        for _ in range(MAX_STEPS):
            if twiml is None:
                break
            twiml = self.follow(twiml)
        self.post(self.base + "/voice/status", {"CallStatus": "completed", "CallDuration": "60"})

    def follow(self, twiml: ET.Element) -> ET.Element | None:
        """Do what one TwiML document says; the next document, or None when the call is over."""
        for verb in twiml:
            if verb.tag == "Connect":
                return self.stream_turn(verb)
            if verb.tag == "Redirect":
                return self.post((verb.text or "").strip(), {"CallStatus": "in-progress"})
            if verb.tag == "Gather":
                return self.post(verb.get("action") or "/voice/turn", {"Digits": "0", "CallStatus": "in-progress"})
            if verb.tag in ("Dial", "Enqueue", "Record", "Hangup", "Reject"):
                return None
        return None

    def stream_turn(self, connect: ET.Element) -> ET.Element | None:
        stream = connect.find("Stream")
        assert stream is not None
        params = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
        url = stream.get("url", "")
        step = params.get("step", "")
        said = "yes" if step in ("confirm", "callback") else self.row["text"]
        pcm = self.audio[said]
        self.turn_no += 1
        barge_in = self.turn_no % 3 == 0 and bool(params.get("prompts"))
        try:
            with MediaStream(url, call_sid=self.sid, parameters=params, auth_token=TOKEN, signed_url=url) as twilio:
                self.listen_to_prompt(twilio, barge_in)
                first_frame = len(twilio.frame_times)
                twilio.send_audio(pcm)
                deadline = time.monotonic() + DECIDED_WITHIN_S
                while not twilio.closed and time.monotonic() < deadline:
                    twilio.send_silence(100)
                closed = twilio.wait_closed(0.5)
        except (OSError, Exception) as exc:  # noqa: BLE001 - any handshake or socket failure is counted
            self.run.add(resets=f"stream: {type(exc).__name__}: {str(exc)[:80]}")
            return None
        end_frame = first_frame + last_voice_ms(pcm) // 20 - 1
        spoken_at = twilio.frame_times[end_frame] if end_frame < len(twilio.frame_times) else None
        if barge_in:
            self.run.add(barge_ins=1, cleared=int(bool(twilio.heard.clears)))
        if not closed or twilio.heard.closed_at is None:
            self.run.add(turns=1, undecided=1)
            return None
        closed_at = twilio.heard.closed_at
        answer = self.post(connect.get("action") or "/voice/turn", {"CallStatus": "in-progress"})
        answered_at = time.monotonic()
        if spoken_at is None:      # closed before the last word (cut off or keypad): not timed
            self.run.add(turns=1)
        else:
            self.run.add(turns=1, closed_ms=(closed_at - spoken_at) * 1000,
                         decided_ms=(answered_at - spoken_at) * 1000)
        return answer

    def listen_to_prompt(self, twilio: MediaStream, barge_in: bool) -> None:
        """Send line silence while the prompt plays (or 1 s of it, to talk over it), then a short pause."""
        started = time.monotonic()
        while time.monotonic() - started < 20:
            twilio.send_silence(100)
            playing = twilio.heard.media_bytes > 0 and "prompt-end" not in twilio.heard.marks_echoed
            if barge_in and time.monotonic() - started >= 1.0:
                return
            if not playing and (twilio.heard.media_bytes > 0 or time.monotonic() - started > 0.6):
                break
        twilio.send_silence(random.choice((300, 400, 500)))


# -- the server ---------------------------------------------------------------------------------
def production_server(engine: str, workdir: Path) -> Gunicorn:
    """The README's production command on a free port, with its own database and the prompts
    rendered (`ivr prompts build`, as `make run` does) into its prompt cache."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "TWILIO_AUTH_TOKEN": TOKEN, "IVR_PUBLIC_URL": base,
           "IVR_DATABASE_URL": f"sqlite:///{workdir / f'ivr-{engine}.sqlite3'}",
           "IVR_PROMPT_CACHE_DIR": str(ROOT / "instance" / "prompt-cache"),
           "IVR_CAPTURE": "stream", "IVR_BIND": f"127.0.0.1:{port}"}
    if engine != "auto":
        env["IVR_SPEECH_ENGINE_EN"] = engine
    subprocess.run([str(BIN / "ivr"), "prompts", "build"], cwd=ROOT, env=env, check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return Gunicorn(["-c", str(ROOT / "gunicorn.conf.py"), "--bind", f"127.0.0.1:{port}"], port=port, env=env,
                    cwd=ROOT, log_path=workdir / f"gunicorn-{engine}.log", start_s=120)


def warm(server: Gunicorn, audio: dict[str, bytes], rows: list[dict]) -> None:
    """One call per worker before timing, so model loading is not in the numbers."""
    run = Run()
    phones = [Phone(server.base, run, rows[i % len(rows)], 9000 + i, audio) for i in range(4)]
    threads = [threading.Thread(target=p.call) for p in phones]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@dataclass
class Routed:
    """What the call database says afterwards: routing, and how each stream turn ended."""
    right: int
    total: int
    misses: list[str]
    turns: list[dict]          # stream_turn event details: reason, decodes, finish_ms, unheard …


def routed(db_url: str, calls: dict[str, dict]) -> Routed:
    """Calls routed to the labelled department or emergency, and every stream turn's record."""
    from ivr.store import db, history
    from flask import Flask

    app = Flask("bench")
    app.config["IVR_DATABASE_URL"] = db_url
    db.init_app(app)
    right, misses, turns = 0, [], []
    with app.app_context():
        for sid, row in calls.items():
            record = history.call_record(db.session(), sid) or {}
            turns += [e["detail"] for e in record.get("events", []) if e["kind"] == "stream_turn"]
            outcome = record.get("outcome")
            department = (record.get("outcome_detail") or {}).get("department")
            want = "emergency" if row.get("action") == "emergency" else row.get("department")
            got = "emergency" if outcome == "emergency" else department
            if got == want:
                right += 1
            else:
                heard = [t.get("heard") for t in record.get("turns", [])]
                misses.append(f"want {want}, got {outcome}/{department}: {row['text'][:50]!r} heard {heard}")
    return Routed(right, len(calls), misses, turns)


def run_callers(server: Gunicorn, audio: dict[str, bytes], rows: list[dict], callers: int, calls: int) -> Run:
    run = Run()
    lock = threading.Lock()
    queue = list(range(callers * calls))

    def caller(slot: int) -> None:
        time.sleep(random.uniform(0, 2.0))
        while True:
            with lock:
                if not queue:
                    return
                n = queue.pop(0)
            Phone(server.base, run, rows[n % len(rows)], n, audio).call()

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(callers)]
    done = threading.Event()
    probe = threading.Thread(target=probe_webhooks, args=(server.base, run, done))
    for thread in threads:
        thread.start()
    probe.start()
    for thread in threads:
        thread.join()
    done.set()
    probe.join()
    return run


def probe_webhooks(base: str, run: Run, done: threading.Event) -> None:
    """Every 2 s, a new caller's `/voice/incoming` while the streams run: are webhooks starved
    by the websockets holding threads? (Those probe calls hang up at once and are not counted.)"""
    n = 0
    while not done.wait(2.0):
        sim = SimulatedCall(HttpTransport(base, timeout=20), token=TOKEN, public_url=base,
                            from_=f"+1556{n:07d}", to="+15550003110")
        n += 1
        started = time.monotonic()
        try:
            reply = sim.post(base + "/voice/incoming", sim.params(CallStatus="ringing"))
        except (ConnectionError, SimulatorError, OSError) as exc:
            run.add(resets=f"probe POST /voice/incoming: {type(exc).__name__}")
            continue
        if reply.status_code == 200:
            run.add(webhook_ms=(time.monotonic() - started) * 1000)
        else:
            run.add(errors=f"probe POST /voice/incoming: HTTP {reply.status_code}")
        sim.post(base + "/voice/status", sim.params(CallStatus="completed", CallDuration="0"))


def uptime() -> str:
    return Path("/proc/loadavg").read_text().split(" 1")[0].strip() if Path("/proc/loadavg").exists() else "?"


def report(engine: str, callers: int, run: Run, db: Routed, log: str, memory: list[tuple[float, float]],
           load_before: str, cpu_s: float, show_misses: bool) -> None:
    closed, decided = run.closed_ms, run.decided_ms

    def stats(values: list[float]) -> str:
        if not values:
            return "n=0"
        return (f"median {statistics.median(values):.0f} ms, p90 {percentile(values, 90):.0f} ms, "
                f"max {max(values):.0f} ms (n={len(values)})")

    def verdict(ok: bool) -> str:
        return "MET" if ok else "MISSED"

    many = callers >= 20
    print(f"\n== engine {engine}, {callers} caller(s) at once: {db.total} calls, {run.turns} stream turns ==")
    print(f"  load average before: {load_before}; after: {uptime()}  (2 cores; above ~2 the wall-clock "
          "figures below include waiting for other programs)")
    decided_ok = run.turns - run.undecided
    print(f"  decided in the stream: {decided_ok}/{run.turns}"
          + (f"   target: all  [{verdict(decided_ok == run.turns)}]" if many else ""))
    print(f"  last word → stream closed:  {stats(closed)}")
    target = ""
    if closed and callers == 1:
        target = f"   target: median ≤ 450 ms, goal 300 ms  [{verdict(statistics.median(closed) <= 450)}]"
    elif closed and many:
        target = f"   target: p90 ≤ 1000 ms  [{verdict(percentile(closed, 90) <= 1000)}]"
    print(f"    (the decision: the server has ended the turn and parked it){target}")
    print(f"  last word → next TwiML:     {stats(decided)}  (+ Twilio posting the <Connect action>)")
    share = 100 * db.right / max(db.total, 1)
    print(f"  routed right: {db.right}/{db.total} ({share:.0f} %)"
          + (f"   target: ≥ 90 %  [{verdict(share >= 90)}]" if many else ""))
    reasons: dict[str, int] = {}
    for turn in db.turns:
        reasons[turn.get("reason", "?")] = reasons.get(turn.get("reason", "?"), 0) + 1
    print(f"  turns ended by: {dict(sorted(reasons.items(), key=lambda kv: -kv[1]))}")
    decoded = [t for t in db.turns if "decodes" in t]
    if decoded:
        decodes = sum(t["decodes"] for t in decoded)
        used = sum(1 for t in decoded if t["decodes"] and t.get("speech"))
        unheard: dict[str, int] = {}
        for turn in decoded:
            if turn.get("unheard"):
                unheard[turn["unheard"]] = unheard.get(turn["unheard"], 0) + 1
        print(f"  decodes: {decodes} for {len(decoded)} turns ({decodes / len(decoded):.2f} per turn; "
              f"{max(0, decodes - used)} thrown away or unused); unheard turns {unheard or 0}")
        finish = [t["finish_ms"] for t in decoded if "finish_ms" in t]
        if finish:
            print(f"  end of turn → transcript in hand (finish_ms): median {statistics.median(finish):.0f} ms, "
                  f"p90 {percentile(finish, 90):.0f} ms")
        if decodes:
            print(f"  worker CPU: {cpu_s:.1f} s in all, {1000 * cpu_s / decodes:.0f} ms per decode "
                  f"(everything the workers did, webhooks and the probe included, divided by decodes)")
    else:
        print(f"  worker CPU: {cpu_s:.1f} s in all, {1000 * cpu_s / max(run.turns, 1):.0f} ms per stream turn")
    print(f"  webhooks while the streams run (a new call's /voice/incoming every 2 s): {stats(run.webhook_ms)}")
    print(f"  barge-ins cleared: {run.cleared}/{run.barge_ins}")
    print(f"  connection resets: {len(run.resets)}; other errors: {len(run.errors)}"
          + (f"   target: 0 resets  [{verdict(not run.resets)}]" if many else ""))
    for line in sorted(set(run.resets + run.errors))[:8]:
        print(f"    {line}")
    print(f"  server log: 'database is locked' ×{log.count('database is locked')}, "
          f"tracebacks ×{log.count('Traceback')}, 'recogniser took longer' ×{log.count('took longer')}, "
          f"pool busy ×{log.count('no decode for this utterance')}, "
          f"decode late ×{log.count('not done within')}")
    print("  resident memory per worker (now / peak): "
          + ", ".join(f"{now:.0f} / {peak:.0f} MB" for now, peak in memory))
    if show_misses:
        for miss in db.misses:
            print(f"    miss: {miss}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--callers", default="1,20", help="caller counts to run, comma-separated (default 1,20)")
    parser.add_argument("--calls", type=int, default=2, help="calls per caller, one after another (default 2)")
    parser.add_argument("--engine", default="auto", help="IVR_SPEECH_ENGINE_EN values, comma-separated (default auto)")
    parser.add_argument("--file", type=Path, default=UTTERANCES, help="labelled utterances (JSON Lines)")
    parser.add_argument("--show-misses", action="store_true")
    args = parser.parse_args()

    rows = [json.loads(line) for line in args.file.read_text().splitlines() if line.strip()]
    random.Random(311).shuffle(rows)
    audio = {text: phone_pcm(synthesize_phone_audio(text)).pcm16 for text in {r["text"] for r in rows} | {"yes"}}
    workdir = Path(tempfile.mkdtemp(prefix="ivr-stream-bench-"))
    print(f"machine: {os.cpu_count()} cores; load average {uptime()}; utterances {args.file.name} ({len(rows)})")
    for engine in args.engine.split(","):
        with production_server(engine, workdir) as server:
            print(f"\nserver: gunicorn {' '.join(server.command[len(GUNICORN):])} "
                  f"(engine {engine}); log {server.log_path}")
            warm(server, audio, rows)
            for callers in (int(c) for c in args.callers.split(",")):
                before = uptime()
                offset = len(server.log_text())
                cpu_before = server.cpu_s()
                run = run_callers(server, audio, rows, callers, args.calls)
                cpu_s = server.cpu_s() - cpu_before
                report(engine, callers, run, routed(server.env["IVR_DATABASE_URL"], run.calls),
                       server.log_text()[offset:], server.memory_mb(), before, cpu_s, args.show_misses)
    return 0


if __name__ == "__main__":
    sys.exit(main())
