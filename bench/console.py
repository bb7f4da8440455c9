"""Console page speed with a realistic history: p50/p95 of the queue, a call's page and reports.

    .venv/bin/python bench/console.py [--calls 100000] [--requests 200]
        [--database-url postgresql://postgres@127.0.0.1:5432/test] [--keep /tmp/console-bench.sqlite3]

Fills a database with `--calls` calls spread over the last 60 days (two turns and three to four
events each, queue exits for queued calls, some callers waiting now, agents' feedback), then
times requests through the app in-process (Flask test client, signed in as a supervisor): the
time to build each page, without network or gunicorn. Targets (issue 11): queue page and a
call's page ≤ 50 ms p95, reports ≤ 500 ms p95. Prints the machine's load, which other work on
a shared machine adds to every figure.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

DEPARTMENTS = ["roads", "streetlights", "traffic", "parking", "water", "sanitation", "building", "parks",
               "animals", "code", "health", "police", "finance", "operator"]
SAID = ["there is a pothole on my street", "my trash was not picked up", "the streetlight is out",
        "I got a parking ticket", "water main break on my block", "a dog is loose in the park",
        "I need a building permit", "question about my tax bill"]
OUTCOMES = [("transferred", 55), ("queued", 20), ("operator", 8), ("voicemail", 6), ("callback", 3),
            ("after_hours", 4), ("abandoned", 4)]


def fill(url: str, count: int, seed: int = 311) -> None:
    from sqlalchemy import insert

    from ivr.store import db, models
    from ivr.store.console import Feedback

    rng = random.Random(seed)
    engine = db.make_engine(url)
    db.upgrade(engine)
    now = datetime.now(timezone.utc)
    weights = [w for _, w in OUTCOMES]
    names = [o for o, _ in OUTCOMES]
    calls, turns, events, feedback = [], [], [], []

    def flush(conn, force: bool = False) -> None:
        if not force and len(calls) < 2000:
            return
        for table, rows in ((models.Call, calls), (models.Turn, turns), (models.Event, events), (Feedback, feedback)):
            if rows:   # calls first: the others refer to them
                conn.execute(insert(table), rows)
                rows.clear()

    # Calls are stored as they happen: oldest first (the table's physical order follows time,
    # as it does on a real line), the last few still waiting in a queue now.
    ages = sorted((rng.uniform(600, 60 * 86400) for _ in range(count - 15)), reverse=True)
    ages += sorted((rng.uniform(5, 300) for _ in range(15)), reverse=True)
    with engine.begin() as conn:
        for number in range(count):
            sid = f"CA{number:032x}"
            waiting = number >= count - 15       # the last few are in a queue right now
            started = now - timedelta(seconds=ages[number])
            outcome = "queued" if waiting else rng.choices(names, weights)[0]
            department = rng.choice(DEPARTMENTS)
            said = rng.choice(SAID)
            confidence = round(rng.uniform(0.5, 0.99), 2)
            state = {"step": "queued" if waiting else "done", "language": "en", "heard": said, "intent": "x",
                     "confidence": confidence, "department": department}
            ended = None if waiting else started + timedelta(seconds=rng.uniform(30, 600))
            calls.append({"sid": sid, "from_number": f"+1312555{rng.randrange(10000):04d}", "to_number": "+13125550311",
                          "language": "en", "state": state, "status": "in-progress" if waiting else "completed",
                          "outcome": outcome, "outcome_detail": {"department": department, "reason": "bench"},
                          "started_at": started, "updated_at": started, "ended_at": ended})
            # Every row of one executemany needs the same keys (the first row's are used for all).
            turns.append({"call_sid": sid, "step": "welcome", "prompt": "City 311 …", "heard": None,
                          "confidence": None, "classification": None, "created_at": started,
                          "decision": {"kind": "ask", "reason": "no language chosen"}})
            turns.append({"call_sid": sid, "step": "ask", "prompt": "Briefly, what are you calling about?",
                          "heard": said, "confidence": confidence, "created_at": started + timedelta(seconds=8),
                          "classification": {"candidates": [{"intent": "x", "department": department, "confidence": confidence}],
                                             "explanation": "bench"},
                          "decision": {"kind": "transfer", "reason": "bench"}})
            at = started + timedelta(seconds=9)
            events.append({"call_sid": sid, "kind": "outcome", "detail": {"outcome": outcome, "department": department},
                           "created_at": at})
            if outcome == "queued" and not waiting:
                events.append({"call_sid": sid, "kind": "queue", "created_at": at + timedelta(seconds=60),
                               "detail": {"result": rng.choice(["bridged"] * 8 + ["hangup"] * 2),
                                          "queue_time_s": str(rng.randrange(5, 600))}})
            if ended:
                events.append({"call_sid": sid, "kind": "status", "detail": {"status": "completed"}, "created_at": ended})
            if number % 200 == 0 and not waiting:
                feedback.append({"call_sid": sid, "author": "bench", "verdict": rng.choice(["right", "wrong"]),
                                 "routed_department": department, "correct_department": rng.choice(DEPARTMENTS),
                                 "text": said, "language": "en", "note": "", "created_at": at})
            flush(conn)
        flush(conn, force=True)
    if engine.dialect.name == "postgresql":
        # A live database is analysed by autovacuum as it grows; a bulk load must do it by hand,
        # or the planner works from empty-table estimates (and scans events sequentially).
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")
    engine.dispose()


def timed(client, path: str, times: int) -> list[float]:
    samples = []
    for _ in range(times):
        start = time.perf_counter()
        response = client.get(path)
        samples.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    return samples


def report(name: str, samples: list[float], target: float) -> None:
    ordered = sorted(samples)
    p95 = ordered[max(0, int(round(0.95 * len(ordered))) - 1)]
    verdict = "ok" if p95 <= target else "OVER TARGET"
    print(f"{name:28s} n={len(samples):4d}  p50 {statistics.median(samples):7.1f} ms  p95 {p95:7.1f} ms  "
          f"(target ≤ {target:.0f} ms: {verdict})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--database-url")
    parser.add_argument("--keep", help="SQLite file to reuse between runs (filled once)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{args.keep or Path(tmp) / 'bench.sqlite3'}"
        from sqlalchemy import func, select

        from ivr.store import models
        from ivr.store.db import make_engine
        present = 0
        try:
            probe = make_engine(url)
            with probe.connect() as conn:
                present = conn.execute(select(func.count()).select_from(models.Call.__table__)).scalar() or 0
            probe.dispose()
        except Exception:   # noqa: BLE001 — no schema yet
            present = 0
        if present != args.calls:
            if present:
                raise SystemExit(f"{url} already holds {present} calls; use an empty database")
            started = time.perf_counter()
            fill(url, args.calls)
            print(f"stored {args.calls} calls in {time.perf_counter() - started:.0f} s")
        from console_helpers import Console, add_users, console_config
        from ivr import create_app

        config = console_config({"TESTING": True, "IVR_DATABASE_URL": url, "IVR_CAPTURE": "twilio",
                                 "IVR_SPEECH_ENGINE": "twilio", "IVR_PROMPT_CACHE_DIR": str(Path(tmp) / "cache")},
                                Path(tmp))
        config["IVR_CLOCK"] = None
        config["IVR_CONTENT_SYNC_S"] = 1.0
        app = create_app(config)
        try:
            add_users(app, {"bench-sup": ("supervisor", "")})
        except Exception:   # noqa: BLE001 — kept database: the user exists
            pass
        console = Console(app, "bench-sup")
        rng = random.Random(1)
        sids = [f"CA{rng.randrange(args.calls):032x}" for _ in range(args.requests)]
        timed(console.client, "/console/queue", 5)            # warm caches, templates, connections
        waiting = console.get("/console/queue?fragment=1").get_data(as_text=True).count("data-sid=")
        print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}; "
              f"{args.calls} calls stored, {waiting} waiting now; backend {url.split(':')[0]}")
        report("queue page", timed(console.client, "/console/queue", args.requests), 50)
        report("queue refresh (fragment)", timed(console.client, "/console/queue?fragment=1", args.requests), 50)
        call_pages = []
        for sid in sids:
            call_pages += timed(console.client, f"/console/calls/{sid}", 1)
        report("a call's page", call_pages, 50)
        report("calls list (first page)", timed(console.client, "/console/calls", args.requests // 4), 50)
        report("calls search 'pothole'", timed(console.client, "/console/calls?q=pothole", args.requests // 4), 500)
        report("reports (7 days)", timed(console.client, "/console/reports", 20), 500)
        report("reports (30 days)", timed(console.client, "/console/reports?from="
                                          + (datetime.now(timezone.utc) - timedelta(days=30)).date().isoformat(), 10), 500)


if __name__ == "__main__":
    main()
