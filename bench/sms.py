"""SMS webhook latency under the README's production command (`gunicorn -c gunicorn.conf.py`).

    .venv/bin/python bench/sms.py [--texters 50] [--duration 30] [--think 0.5-2] [--closed]
        [--database-url postgresql://postgres@127.0.0.1:5432/test] [--speech-engine twilio]

Starts gunicorn with the repository's gunicorn.conf.py (2 gthread workers × 32 threads unless
IVR_WORKERS / IVR_THREADS say otherwise) on a free port, with its own database, then `--texters`
citizens text the line at once through the project's simulator (`SimulatedTexter`: signed like
Twilio, over HTTP/1.1 keep-alive). Each texter runs whole conversations, picked at random:
a report with its place (→ a case), a report without (→ "where is it?" → the address → a case),
STATUS of its own case, HELP, SUBSCRIBE WATER, a Spanish report, and 5 % of texts are sent twice
(Twilio's retry, answered from storage). Paced by default (a think time between a texter's texts);
`--closed` sends back to back (what the server can take).

Prints webhook latency p50/p90/p99/max (client side, all texts and per kind), texts/s, server
CPU per webhook, failed webhooks (non-200 or the "please call" rescue), cases opened, and the load
average before and after: on a shared machine the wall-clock figures mean little without it.
`--in-process N` instead sends N texts (the same conversations, one texter at a time) through
Flask's test client with no server and no threads, in 3 batches, and prints the CPU time per text
of each batch and the lowest: the app's own work, steadier than latency on a loaded machine.
Speech recognisers are not needed by texts: by default the server runs with
IVR_SPEECH_ENGINE=twilio so no model warms up during the run (`--speech-engine auto` to keep the
default engines).
"""
from __future__ import annotations

import argparse
import logging
import os
import random
import re
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve import Gunicorn, free_port, server_cpu_seconds  # noqa: E402

from ivr import create_app  # noqa: E402
from ivr.telephony.simulator import FlaskTransport, HttpTransport, SimulatedTexter, SimulatorError  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-auth-token"
CASE = re.compile(r"\b(\d{7})\b")
REPORTS = ["pothole at 120 Main St", "streetlight out on Elm Street", "the streetlight is out at 5 Oak St",
           "water main break at 12 Elm St", "missed garbage pickup at 1412 W Foster Ave",
           "graffiti on the wall at 300 N State St", "dead raccoon in the street at 45 Pine Ave"]
WITHOUT_PLACE = ["missed garbage pickup", "big pothole on my block", "streetlight flickering all night"]
SPANISH = ["hay un bache enorme en la calle Juárez 120", "la lámpara de la calle Roble 12 no prende"]


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    cases: int = 0
    texts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, ms: float) -> None:
        with self.lock:
            self.latencies.setdefault(kind, []).append(ms)
            self.texts += 1


def production_server(database_url: str | None, speech_engine: str, workdir: Path) -> Gunicorn:
    """`gunicorn -c gunicorn.conf.py` on a free port, with its own database (started by `with`)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "TWILIO_AUTH_TOKEN": TOKEN, "IVR_PUBLIC_URL": base,
           "IVR_DATABASE_URL": database_url or f"sqlite:///{workdir / 'ivr-sms.sqlite3'}",
           "IVR_BIND": f"127.0.0.1:{port}", "IVR_JOBS_DB": str(workdir / "jobs.sqlite3"),
           "IVR_LOG_LEVEL": "warning", "IVR_TTS": "off"}
    if speech_engine != "auto":
        env["IVR_SPEECH_ENGINE"] = speech_engine
        env["IVR_CAPTURE"] = "twilio"
    return Gunicorn(["-c", str(ROOT / "gunicorn.conf.py")], port=port, env=env, cwd=ROOT,
                    log_path=workdir / "gunicorn.log")


def conversation(texter: SimulatedTexter, rng: random.Random, stats: Stats, think: tuple[float, float],
                 own_cases: list[str]) -> None:
    """One conversation, chosen at random; every text timed."""

    def send(kind: str, body: str) -> str:
        started = time.perf_counter()
        try:
            reply = texter.text(body)
            stats.add(kind, (time.perf_counter() - started) * 1000)
            if rng.random() < 0.05:
                started = time.perf_counter()
                texter.resend()                 # Twilio's retry of the same MessageSid
                stats.add("retry", (time.perf_counter() - started) * 1000)
        except SimulatorError as exc:
            with stats.lock:
                stats.failures.append(f"{kind}: {exc}")
            return ""
        if "went wrong on our side" in reply or "algo falló" in reply:
            with stats.lock:
                stats.failures.append(f"{kind}: rescued")
        found = CASE.search(reply)
        if found and kind in ("report", "address", "spanish"):
            own_cases.append(found.group(1))
            with stats.lock:
                stats.cases += 1
        if think[1] > 0:
            time.sleep(rng.uniform(*think))
        return reply

    choice = rng.random()
    if choice < 0.40:
        send("report", rng.choice(REPORTS))
    elif choice < 0.60:
        send("ask_place", rng.choice(WITHOUT_PLACE))
        send("address", f"{rng.randint(1, 4999)} N Clark St")
    elif choice < 0.75 and own_cases:
        send("status", f"STATUS {rng.choice(own_cases)}")
    elif choice < 0.85:
        send("spanish", rng.choice(SPANISH))
    elif choice < 0.93:
        send("subscribe", "SUBSCRIBE WATER")
    else:
        send("help", "HELP")


def run(server: Gunicorn, args: argparse.Namespace) -> tuple[Stats, float, dict[int, float], dict[int, float]]:
    stats = Stats()
    think = (0.0, 0.0) if args.closed else tuple(float(x) for x in args.think.split("-"))  # type: ignore[assignment]
    stop_at = time.monotonic() + args.duration

    def texter_thread(n: int) -> None:
        rng = random.Random(args.seed * 1000 + n)
        phone = f"+1312555{n:04d}"
        texter = SimulatedTexter(HttpTransport(server.base), token=TOKEN, public_url=server.base, from_=phone)
        cases: list[str] = []
        time.sleep(rng.uniform(0, min(2.0, args.duration / 4)))   # texters do not all arrive at once
        while time.monotonic() < stop_at:
            conversation(texter, rng, stats, think, cases)  # type: ignore[arg-type]

    threads = [threading.Thread(target=texter_thread, args=(n,), daemon=True) for n in range(args.texters)]
    cpu_before = server_cpu_seconds(server.pid)
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=args.duration + 120)
    seconds = time.monotonic() - started
    return stats, seconds, cpu_before, server_cpu_seconds(server.pid)


def fresh_schema(url: str, schema: str = "bench_sms") -> str:
    """`url` pointed at an emptied schema of its own, so the run neither sees nor leaves other tables."""
    import sqlalchemy as sa

    from ivr.store.db import make_engine

    engine = make_engine(url)        # the app's driver for the URL (psycopg 3 for postgresql://)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))] if ordered else float("nan")


def in_process(args: argparse.Namespace) -> None:
    """CPU per text through Flask's test client (no server, no threads): the app's own work."""
    with tempfile.TemporaryDirectory(prefix="bench-sms-") as tmp:
        app = create_app({"IVR_DATABASE_URL": args.database_url or f"sqlite:///{Path(tmp) / 'ivr.sqlite3'}",
                          "TWILIO_AUTH_TOKEN": TOKEN, "IVR_PUBLIC_URL": "https://bench.example", "IVR_TTS": "off",
                          "IVR_SPEECH_ENGINE": "twilio", "IVR_CAPTURE": "twilio",
                          "IVR_JOBS_DB": str(Path(tmp) / "jobs.sqlite3")})
        logging.getLogger().setLevel(logging.WARNING)
        client = app.test_client()
        stats = Stats()
        rng = random.Random(args.seed)
        texters = [SimulatedTexter(FlaskTransport(client), token=TOKEN, public_url="https://bench.example",
                                   from_=f"+1312555{n:04d}") for n in range(20)]
        cases: dict[int, list[str]] = {n: [] for n in range(len(texters))}
        conversation(texters[0], rng, stats, (0.0, 0.0), cases[0])     # warm up
        per_text = []
        for _batch in range(3):
            before_texts, before_cpu = stats.texts, time.process_time()
            while stats.texts - before_texts < args.in_process // 3:
                n = rng.randrange(len(texters))
                conversation(texters[n], rng, stats, (0.0, 0.0), cases[n])
            per_text.append((time.process_time() - before_cpu) / (stats.texts - before_texts) * 1000)
        load = os.getloadavg()
        print(f"# bench/sms.py --in-process {args.in_process}: {'PostgreSQL' if args.database_url else 'SQLite'}, "
              f"Flask test client, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        print("CPU per text, ms, per batch: " + "  ".join(f"{v:.2f}" for v in per_text) +
              f"   lowest {min(per_text):.2f}; failures {len(stats.failures)}; cases {stats.cases}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texters", type=int, default=50, help="citizens texting at once")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of texting")
    parser.add_argument("--think", default="0.5-2", help="pause between a texter's texts, seconds (min-max)")
    parser.add_argument("--closed", action="store_true", help="no pause: back-to-back texts")
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--speech-engine", default="twilio", help="IVR_SPEECH_ENGINE for the server (auto: default)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--in-process", type=int, default=0, metavar="N",
                        help="CPU per text through Flask's test client instead (N texts)")
    args = parser.parse_args()
    if args.database_url and args.database_url.startswith("postgresql"):
        args.database_url = fresh_schema(args.database_url)
    if args.in_process:
        in_process(args)
        return
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-sms-") as tmp, production_server(args.database_url, args.speech_engine,
                                                                                    Path(tmp)) as server:
        warm = SimulatedTexter(HttpTransport(server.base), token=TOKEN, public_url=server.base, from_="+13125559999")
        for body in ("HELP", "pothole at 1 Main St", "STATUS 1234567"):
            warm.text(body)
        stats, seconds, cpu_before, cpu_after = run(server, args)
    load_after = os.getloadavg()
    every = [ms for values in stats.latencies.values() for ms in values]
    server_cpu = sum(cpu_after.get(pid, 0) - cpu_before.get(pid, 0) for pid in cpu_after)
    workers = os.environ.get("IVR_WORKERS", "2"), os.environ.get("IVR_THREADS", "32")
    mode = "closed (back to back)" if args.closed else f"paced (think {args.think} s)"
    print(f"# bench/sms.py: {args.texters} texters, {mode}, {args.duration:g} s, gunicorn -c gunicorn.conf.py "
          f"({workers[0]} workers × {workers[1]} threads), {'PostgreSQL' if args.database_url else 'SQLite'}, "
          f"{os.cpu_count()} cores")
    print(f"load average before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}; "
          f"after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    print(f"texts {len(every)} in {seconds:.1f} s = {len(every) / seconds:.1f}/s; cases opened {stats.cases}; "
          f"failed {len(stats.failures)}" + (f" (first: {stats.failures[0]})" if stats.failures else ""))
    if every:
        print(f"SMS webhook latency ms: p50 {pct(every, 50):.1f}  p90 {pct(every, 90):.1f}  p99 {pct(every, 99):.1f}"
              f"  max {max(every):.1f}  mean {statistics.fmean(every):.1f}")
        print(f"server CPU {server_cpu:.2f} s = {server_cpu / len(every) * 1000:.2f} ms per webhook")
    for kind, values in sorted(stats.latencies.items()):
        print(f"  {kind:10} n={len(values):5}  p50 {pct(values, 50):7.1f}  p99 {pct(values, 99):7.1f}  max {max(values):7.1f}")


if __name__ == "__main__":
    main()
