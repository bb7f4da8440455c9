"""Concurrent simulated calls against the IVR under gunicorn, compared with a minimal Flask app.

    .venv/bin/python bench/calls.py [--concurrency 100] [--mode both|paced|closed]
        [--think 1-3] [--duration 30] [--calls 300] [--rounds 2] [--workers 2] [--threads 32]
        [--hours now|open|closed] [--database-url postgresql://postgres@127.0.0.1:5432/test]

Starts gunicorn itself (identical settings for both apps: production's gunicorn.conf.py, then the
worker model given here) on free 127.0.0.1 ports and drives
`--concurrency` simultaneous calls with one client: signed webhooks, following the TwiML each
answer returns (Gather → speech from the city's labelled utterances, Dial/Enqueue/Record →
their action callbacks, Redirect) until the call ends, then the status callback.

Two modes, each printing webhook latency p50/p99, calls/s, requests/s and server CPU per
webhook for both apps, and the p99 ratio (issue 10: ≤ 3, goal 1.5, at 100 concurrent calls):
- paced (the headline): like real callers, each call waits a think time (uniform in
  `--think`, default 1-3 s: the prompt plays, the caller speaks) between its webhooks. Calls
  start during `--duration` seconds; calls still running `--drain` seconds later are cut.
- closed: no pause between webhooks (saturation: what the server can take), `--calls` calls.
Each mode runs `--rounds` times per app, IVR and minimal app in turn with both servers up, so the
machine's changes of speed during the run fall on both alike; the numbers are over all rounds,
and each round's own ratio is printed too (their spread says how far to trust the ratio).
The minimal app answers every webhook with one fixed <Gather>. It gets the IVR's calls again
(call_sim.Replayer): each round's IVR calls are recorded as sent (every webhook, and the caller's
pause before it: Twilio's follow-ups such as a <Dial>'s whisper and the status callback come at
once) and replayed to the minimal app, so both apps get the same requests at the same pace. (Until
2026-12-08 the minimal app's own simulated calls were cut to about the IVR's webhooks per call:
they came out at 6.0 webhooks per call against the IVR's 5.4, with a think time before each, so the
minimal app got ~16 % fewer requests per second and fewer back-to-back ones than the IVR.)
Also printed: the time each webhook spent inside the app (a WSGI wrapper's header, see
`timed_target`: the rest of the latency is gunicorn, queues and CPU contention), server CPU per
webhook and per gunicorn process, the client's own CPU (it shares the cores), `rescued` —
IVR answers that were the operator fallback, i.e. failed webhooks — and, on SQLite, how long the
IVR's write transactions waited for the write turn and held it (from its /metrics: the turn is
what a slow webhook waits for besides the CPU).

The IVR is served as production serves it (`gunicorn -c gunicorn.conf.py`: ivr.wsgi:app, gthread,
2 workers × 32 threads by default); the minimal app gets the same gunicorn settings. `--hours`
fixes the city's time the calls see (open: transfers and queues; closed: after-hours reports
with their case numbers, messages, callbacks), so runs at different times of day compare.
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
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from call_sim import APP_TIME_HEADER, TOKEN, Caller, Plan, Replayer, Stats, Step
from serve import Gunicorn, free_port, server_cpu_seconds

from ivr.telephony.simulator import HttpTransport

ROOT = Path(__file__).resolve().parent.parent
UTTERANCES = ROOT / "tests" / "data" / "dev_utterances_en.jsonl"
MAX_STEPS = 12  # a call that has not ended after this many webhooks is hung up (and counted)
METRICS_TOKEN = "bench-metrics"   # the IVR's /metrics, scraped around each round (`turn_histograms`)
#: SQLite's write turn as the IVR counts it (ivr/metrics.py): what a slow webhook waited for.
TURN_SERIES = {"wait": "ivr_sqlite_write_turn_wait_seconds", "held": "ivr_sqlite_write_turn_held_seconds"}

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


#: Wraps an app to report its own time per request (call_sim.APP_TIME_HEADER). start_response
#: runs once the view, the commit and after_request hooks are done.
TIMED_WRAPPER = '''
import time
from {module} import app as app

_inner = app.wsgi_app

def _timed(environ, start_response):
    started = time.perf_counter()

    def start(status, headers, exc_info=None):
        spent = f"{{(time.perf_counter() - started) * 1000:.3f}}"
        return start_response(status, [*headers, ("{header}", spent)], exc_info)

    return _inner(environ, start)

app.wsgi_app = _timed
{clock}
'''

#: With --hours open|closed: the app's clock (IVR_CLOCK, the hook the tests use) runs at the real
#: pace from a fixed local time of a working Tuesday, so the call mix does not depend on when the
#: bench runs (before, a run at 07:00 in the city filed after-hours reports and one at 09:00 dialled).
SHIFTED_CLOCK = '''
from datetime import datetime, timezone
from ivr import rules_source
from ivr.routing.hours import city_timezone

with app.app_context():
    _zone = city_timezone(rules_source.current_rules())
_start = datetime.fromisoformat("{local}").replace(tzinfo=_zone)
_shift = _start - datetime.now(timezone.utc)
app.config["IVR_CLOCK"] = lambda: datetime.now(timezone.utc) + _shift
'''
#: Local times of Tuesday 8 December 2026 (no holiday): the departments open, and all closed.
HOURS = {"open": "2026-12-08T10:00:00", "closed": "2026-12-08T22:00:00"}


def timed_target(target: str, folder: Path, hours: str = "now") -> str:
    """A gunicorn target (module in `folder`) serving `target`'s app with its time per request,
    and with its clock at `hours` (see SHIFTED_CLOCK) unless that is "now"."""
    module = target.split(":")[0]
    wrapper = "timed_" + module.replace(".", "_")
    clock = SHIFTED_CLOCK.format(local=HOURS[hours]) if hours in HOURS else ""
    Path(folder, f"{wrapper}.py").write_text(
        TIMED_WRAPPER.format(module=module, header=APP_TIME_HEADER, clock=clock))
    return f"{wrapper}:app"


def run(port: int, master_pid: int, plan: Plan, utterances: list[str], step_cap: int,
        cut_is_normal: bool = False, replay: list[list[Step]] | None = None) -> Stats:
    """Drive calls per `plan`, `plan.concurrency` at a time, and measure them: simulated calls
    following the server's TwiML, or with `replay` those recorded calls sent again as they were."""
    stats = Stats()
    counter = iter(range(plan.calls))
    counter_lock = threading.Lock()
    started = time.monotonic()
    stop_starting, deadline = started + plan.start_for_s, started + plan.deadline_s

    def worker() -> None:
        base = f"http://127.0.0.1:{port}"
        caller: Caller | Replayer = (
            Replayer(HttpTransport(base), base, stats, replay, deadline) if replay is not None else
            Caller(HttpTransport(base), base, stats, utterances, step_cap, cut_is_normal, plan, deadline))
        if plan.think[1] > 0:
            time.sleep(random.uniform(0, plan.think[1]))  # callers ring at different moments
        while time.monotonic() < stop_starting:
            with counter_lock:
                n = next(counter, None)
            if n is None:
                return
            caller.call(n)

    cpu_before, client_before = server_cpu_seconds(master_pid), time.process_time()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(plan.concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats.seconds = time.monotonic() - started
    cpu_after = server_cpu_seconds(master_pid)
    stats.worker_cpu_s = sorted((cpu_after[pid] - cpu_before.get(pid, 0.0) for pid in cpu_after), reverse=True)
    stats.server_cpu_s = sum(stats.worker_cpu_s)
    stats.client_cpu_s = time.process_time() - client_before
    return stats


def turn_histograms(port: int) -> dict[str, dict[str, float]]:
    """The IVR's write-turn histograms from its /metrics (all workers' together): per series, the
    cumulative count of each bucket bound ("le"), plus "count" and "sum". Empty on PostgreSQL."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                                     headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        text = answer.read().decode()
    found: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        kind = next((k for k, name in TURN_SERIES.items() if family.name == name), None)
        for sample in family.samples if kind else ():
            values = found.setdefault(kind, {})
            if sample.name.endswith("_bucket"):
                values[sample.labels["le"]] = sample.value
            elif sample.name.endswith(("_count", "_sum")):
                values[sample.name.rsplit("_", 1)[1]] = sample.value
    return found


def turn_since(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """What the histograms counted between two `turn_histograms` scrapes (this round alone)."""
    return {kind: {key: value - before.get(kind, {}).get(key, 0.0) for key, value in values.items()}
            for kind, values in after.items()}


def turn_summary(histograms: dict[str, dict[str, float]]) -> str:
    """'waited: mean 0.21 ms, p99 ≤ 2.5 ms; held: …' from `turn_histograms` differences (the
    p99 is the bucket bound it falls under: the buckets are coarse)."""
    parts = []
    for kind in TURN_SERIES:
        values = histograms.get(kind, {})
        count = values.get("count", 0.0)
        if count <= 0:
            continue
        bounds = sorted((float(le), n) for le, n in values.items() if le not in ("count", "sum"))
        p99 = next((le for le, n in bounds if n >= 0.99 * count), float("inf"))
        parts.append(f"{'waited' if kind == 'wait' else 'held'}: mean {values.get('sum', 0.0) * 1000 / count:.2f} ms, "
                     f"p99 ≤ {p99 * 1000:g} ms")
    return "; ".join(parts)


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
    app_p50, app_p99 = percentiles(stats.app_ms) if stats.app_ms else (float("nan"), float("nan"))
    print(f"  {name:8s} webhooks={len(lat):6d}  p50={p50:7.1f} ms  p99={p99:7.1f} ms  "
          f"(inside the app: p50={app_p50:.1f} ms  p99={app_p99:.1f} ms)  "
          f"calls/s={stats.calls / stats.seconds:6.1f}  req/s={stats.steps / stats.seconds:6.1f}  "
          f"webhooks/call={stats.steps / max(stats.calls, 1):.1f}  server CPU/webhook="
          f"{stats.server_cpu_s * 1000 / max(stats.steps, 1):.2f} ms (per process "
          f"{'/'.join(f'{cpu / stats.seconds:.0%}' for cpu in stats.worker_cpu_s)} of a core, idle included)  client CPU/webhook={stats.client_cpu_s * 1000 / max(stats.steps, 1):.2f} ms  "
          f"errors={len(stats.errors)}  "
          f"rescued={stats.rescued}  unfinished={stats.unfinished}  cut={stats.cut}")
    if stats.write_turn:
        print(f"           SQLite write turn per transaction (the IVR's /metrics): {turn_summary(stats.write_turn)}")
    for message in sorted(set(stats.errors))[:5]:
        print(f"           error: {message} (×{stats.errors.count(message)})")
    for path, values in sorted(stats.by_path.items()) if per_path else ():
        path_p50, path_p99 = percentiles(values)
        print(f"           {path:24s} n={len(values):5d}  p50={path_p50:7.1f} ms  p99={path_p99:7.1f} ms")
    if per_path and stats.prompt_fetches_ms:   # Twilio's GETs of prompts rendered on fetch (not webhooks)
        fetch_p50, fetch_p99 = percentiles(stats.prompt_fetches_ms)
        print(f"           {'GET render-on-fetch':24s} n={len(stats.prompt_fetches_ms):5d}  p50={fetch_p50:7.1f} ms  "
              f"p99={fetch_p99:7.1f} ms")
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


def gunicorn_args(target: str, port: int, args: argparse.Namespace) -> list[str]:
    """The same gunicorn settings for both apps: production's file (gunicorn.conf.py: keep-alive,
    timeouts …; the app named on the command line replaces its `wsgi_app`), then this run's
    worker model. Before, only the IVR read the file (gunicorn looks for it in its working
    directory), so the minimal app ran with gunicorn's defaults (keep-alive 2 s instead of 5 s)."""
    return ["-c", str(ROOT / "gunicorn.conf.py"), "--bind", f"127.0.0.1:{port}", "--workers", str(args.workers),
            "--worker-class", args.worker_class, "--threads", str(args.threads), "--log-level", "warning",
            "--timeout", "60", target]


def warm_up(server: Gunicorn, args: argparse.Namespace, utterances: list[str], minimal: bool) -> None:
    """Unmeasured calls first: prompts render to audio on first use and every worker loads lazily."""
    warm = Plan(min(args.concurrency, 8), args.warmup, 60, 90)
    run(server.port, server.pid, warm, utterances, MAX_STEPS, cut_is_normal=minimal)


def bench_both(ivr_server: Gunicorn, minimal_server: Gunicorn, args: argparse.Namespace,
               utterances: list[str]) -> dict[str, tuple[Stats, Stats, list[float]]]:
    """Every plan, `--rounds` times, the IVR then the minimal app in turn (both servers stay up,
    the idle one costs nothing), so a change in the machine's speed during the run (this shared
    machine's CPU varies by ±20 %) falls on both apps alike. Returns per plan the IVR's and the
    minimal app's numbers over all rounds, and each round's p99 ratio."""
    results: dict[str, tuple[Stats, Stats, list[float]]] = {}
    for name, plan in plans(args).items():
        ivr_total, minimal_total, ratios = Stats(), Stats(), []
        for _ in range(args.rounds):
            turn_before = turn_histograms(ivr_server.port)
            ivr = run(ivr_server.port, ivr_server.pid, plan, utterances, MAX_STEPS)
            ivr.write_turn = turn_since(turn_before, turn_histograms(ivr_server.port))
            # The minimal app gets this round's IVR calls again, webhook for webhook and pause for
            # pause (call_sim.Replayer): the same requests at the same pace.
            recorded = [ivr.scripts[n] for n in sorted(ivr.scripts)]
            minimal = run(minimal_server.port, minimal_server.pid, plan, utterances, MAX_STEPS,
                          cut_is_normal=True, replay=recorded)
            if ivr.latencies_ms and minimal.latencies_ms:
                ratios.append(percentiles(ivr.latencies_ms)[1] / percentiles(minimal.latencies_ms)[1])
            ivr_total.add(ivr)
            minimal_total.add(minimal)
        results[name] = (ivr_total, minimal_total, ratios)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=100, help="simultaneous calls")
    parser.add_argument("--mode", choices=("both", "paced", "closed"), default="both")
    parser.add_argument("--think", default="1-3", help="paced: seconds between a call's webhooks, MIN-MAX")
    parser.add_argument("--duration", type=float, default=30, help="paced: seconds during which calls start, per round")
    parser.add_argument("--drain", type=float, default=30, help="paced: seconds more before running calls are cut")
    parser.add_argument("--calls", type=int, default=300, help="closed: calls per round per app")
    parser.add_argument("--max-seconds", type=float, default=60, help="closed: stop starting calls after this")
    parser.add_argument("--warmup", type=int, default=30, help="unmeasured calls first (closed loop)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="runs of each plan per app, alternating IVR and minimal (numbers are over all rounds)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=32, help="gunicorn threads per worker (gunicorn.conf.py's)")
    parser.add_argument("--worker-class", default="gthread", help="gunicorn worker class")
    parser.add_argument("--database-url", default="", help="default: a fresh SQLite file")
    parser.add_argument("--hours", choices=("now", *HOURS), default="now",
                        help="the city's time the calls see: open (10:00 on a working Tuesday: calls are "
                             "transferred and queued), closed (22:00: after-hours reports, messages, "
                             "callbacks) or now (the real clock)")
    args = parser.parse_args()
    if not 1 <= args.concurrency <= 1000 or args.duration > 600 or args.max_seconds > 600 or not 1 <= args.rounds <= 20:
        raise SystemExit("--concurrency must be 1..1000; --duration and --max-seconds at most 600; --rounds 1..20")
    plans(args)  # check --think before starting anything
    utterances = [json.loads(line)["text"] for line in UTTERANCES.read_text().splitlines() if line.strip()]

    with tempfile.TemporaryDirectory(prefix="ivr-bench-") as tmp:
        ivr_port, minimal_port = free_port(), free_port()
        env = {**os.environ, "TWILIO_AUTH_TOKEN": TOKEN, "IVR_PUBLIC_URL": f"http://127.0.0.1:{ivr_port}",
               "IVR_METRICS_TOKEN": METRICS_TOKEN,
               "IVR_DATABASE_URL": args.database_url or f"sqlite:///{tmp}/bench.sqlite3",
               "IVR_CAPTURE": os.environ.get("IVR_CAPTURE", "twilio"),
               "IVR_SPEECH_ENGINE": os.environ.get("IVR_SPEECH_ENGINE", "twilio"),
               # The timing wrappers (timed_target) live in `tmp`.
               "PYTHONPATH": os.pathsep.join(filter(None, [tmp, os.environ.get("PYTHONPATH")]))}
        # As `make run` does before serving: every fixed prompt rendered, so the measured calls
        # render only per-call prompts (in the background; no webhook waits for a voice).
        built = subprocess.run([str(Path(sys.executable).parent / "ivr"), "prompts", "build"], cwd=ROOT,
                               env=env, capture_output=True, text=True)
        if built.returncode != 0:
            print(f"# ivr prompts build failed ({built.returncode}): {built.stderr.strip().splitlines()[-1:]}")
        print(f"# {args.concurrency} concurrent calls; gunicorn {args.workers} workers × {args.threads} "
              f"threads ({args.worker_class}); {os.cpu_count()} CPUs; load average "
              f"{os.getloadavg()[0]:.2f} at start; db="
              f"{'postgresql' if 'postgres' in env['IVR_DATABASE_URL'] else 'sqlite'}; city time {args.hours}"
              f"{' (' + HOURS[args.hours] + ')' if args.hours in HOURS else ''}", flush=True)
        Path(tmp, "minimal_app.py").write_text(MINIMAL_APP)
        ivr_args = gunicorn_args(timed_target("ivr.wsgi:app", Path(tmp), args.hours), ivr_port, args)
        minimal_args = gunicorn_args(timed_target("minimal_app:app", Path(tmp)), minimal_port, args)
        minimal_env = {**env, "IVR_PUBLIC_URL": f"http://127.0.0.1:{minimal_port}"}
        with Gunicorn(ivr_args, port=ivr_port, env=env, cwd=ROOT, start_s=120) as ivr_server, \
                Gunicorn(minimal_args, port=minimal_port, env=minimal_env, cwd=Path(tmp), start_s=120) as minimal_server:
            warm_up(ivr_server, args, utterances, minimal=False)
            warm_up(minimal_server, args, utterances, minimal=True)
            results = bench_both(ivr_server, minimal_server, args, utterances)
    for name, plan in plans(args).items():
        ivr, minimal, ratios = results[name]
        pace = f"think {plan.think[0]:g}-{plan.think[1]:g} s" if plan.think[1] else "no think time"
        print(f"{name} ({pace}; {args.rounds} rounds per app, alternating):")
        ivr_p99 = report("ivr", ivr, per_path=True)
        minimal_p99 = report("minimal", minimal)
        print(f"  p99 ratio ivr/minimal = {ivr_p99 / minimal_p99:.2f} over all rounds (target ≤ 3, goal ≤ 1.5); "
              f"per round {' '.join(f'{r:.2f}' for r in ratios)}; load average now {os.getloadavg()[0]:.2f}",
              flush=True)


if __name__ == "__main__":
    main()
