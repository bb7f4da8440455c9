"""Several worker processes × threads writing one SQLite file the way webhooks do: does any write
fail with "database is locked", and how long does a writer wait for its turn?

    .venv/bin/python bench/sqlite_writers.py [--processes 2] [--threads 32] [--seconds 20]
        [--hold-ms 0-20] [--busy-timeout-ms 5000] [--no-turn]

Each thread serves webhooks back to back through the real store code (``ivr.store.db.make_engine``,
``calls``, ``replies``): the webhook's read (stored answer and state) outside any write, then
ensure_call, a turn, the state, an event and the stored answer, committed once. ``--hold-ms``
keeps each write transaction open that much longer (uniform in the range, a sleep between its
writes): on a loaded 2-core machine a thread holding SQLite's write lock is often descheduled, and
that, not SQLite itself, is what makes other writers wait. Prints per run: webhooks committed,
"database is locked" failures, other failures, commit latency p50/p99/max, CPU per webhook and
the load average. The gunicorn-level measurement is bench/calls.py (count the lines in its log).
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import multiprocessing
import os
import random
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy.orm import sessionmaker  # noqa: E402

from ivr.store import calls, db, replies, sqlite  # noqa: E402
from ivr.store.convert import state_from_dict  # noqa: E402


def worker(url: str, number: int, args: argparse.Namespace, out: "multiprocessing.Queue[dict]") -> None:
    """One gunicorn-like worker process: `args.threads` threads serving webhooks until time is up."""
    db.SQLITE_BUSY_TIMEOUT_MS = args.busy_timeout_ms
    if args.no_turn:   # the alternative measured: BEGIN IMMEDIATE and SQLite's busy timeout alone
        sqlite.WriteTurn.take = lambda _self: False   # type: ignore[method-assign]
        logging.getLogger("ivr.store.sqlite").setLevel(logging.ERROR)
    engine = db.make_engine(url)
    made = sessionmaker(engine, expire_on_commit=False)
    low, high = (float(x) for x in args.hold_ms.split("-"))
    latencies: list[float] = []
    locked: list[str] = []
    other: list[str] = []
    deadline = time.monotonic() + args.seconds

    def serve(thread: int) -> None:
        rng = random.Random(number * 1000 + thread)
        n = 0
        while time.monotonic() < deadline:
            sid = f"CA{number}x{thread}x{n // 6}"   # a call lasts ~6 webhooks
            started = time.perf_counter()
            try:
                with made() as s:
                    _body, state = calls.recall_with_state(s, [f"{sid}:{n}"], sid)
                    calls.ensure_call(s, sid, "+15551234567", "+15550001111")
                    hold = rng.uniform(low, high) / 1000
                    if hold:
                        time.sleep(hold / 2)
                    calls.add_turn(s, sid, "ask", "", f"turn {n}", None, 0.9, None, None)
                    calls.save_state(s, sid, dataclasses.replace(state or state_from_dict({}), step="ask"))
                    if hold:
                        time.sleep(hold / 2)
                    calls.add_event(s, sid, "decision", {"n": n})
                    replies.remember_response(s, f"{sid}:{n}", "<Response/>")
                latencies.append(time.perf_counter() - started)
            except Exception as exc:  # noqa: BLE001 - every failure is counted and reported
                message = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
                (locked if "database is locked" in message else other).append(message)
            n += 1

    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    pool = [threading.Thread(target=serve, args=(t,)) for t in range(args.threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    engine.dispose()
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    out.put({"latencies": latencies, "locked": locked, "other": other, "cpu": cpu, "process": number})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--hold-ms", default="0-0", help="extra time each write transaction stays open, MIN-MAX")
    parser.add_argument("--busy-timeout-ms", type=int, default=db.SQLITE_BUSY_TIMEOUT_MS)
    parser.add_argument("--no-turn", action="store_true",
                        help="measure without the write turn: BEGIN IMMEDIATE and the busy timeout alone")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ivr-sqlite-writers-") as tmp:
        url = f"sqlite:///{tmp}/bench.sqlite3"
        engine = db.make_engine(url)
        db.upgrade(engine)
        engine.dispose()
        context = multiprocessing.get_context("fork")
        out = context.Queue()
        load_before = os.getloadavg()[0]
        processes = [context.Process(target=worker, args=(url, n, args, out)) for n in range(args.processes)]
        for process in processes:
            process.start()
        results = [out.get(timeout=args.seconds + 600) for _ in processes]
        for process in processes:
            process.join(timeout=60)
    latencies = sorted(x for r in results for x in r["latencies"])
    locked = [x for r in results for x in r["locked"]]
    other = [x for r in results for x in r["other"]]
    cpu = sum(r["cpu"] for r in results)
    done = len(latencies)

    def pct(p: float) -> float:
        return latencies[min(done - 1, int(p * done))] * 1000 if done else float("nan")

    print(f"# {args.processes} processes × {args.threads} threads, {args.seconds:g} s, hold {args.hold_ms} ms, "
          f"busy timeout {args.busy_timeout_ms} ms{', no write turn' if args.no_turn else ''}; load average {load_before:.2f} → {os.getloadavg()[0]:.2f}")
    print(f"committed={done}  database_is_locked={len(locked)}  other_failures={len(other)}  "
          f"webhooks/s={done / args.seconds:.0f}  p50={pct(0.5):.1f} ms  p99={pct(0.99):.1f} ms  "
          f"max={(latencies[-1] * 1000 if done else float('nan')):.1f} ms  "
          f"CPU/webhook={cpu / max(done, 1) * 1000:.2f} ms"
          + (f"  median={statistics.median(latencies) * 1000:.1f} ms" if done else ""))
    print("  committed per process:", " ".join(str(len(r["latencies"])) for r in sorted(results, key=lambda r: r["process"])))
    for message in sorted(set(other))[:5]:
        print("  other:", message)


if __name__ == "__main__":
    main()
