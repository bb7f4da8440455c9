"""How long retention takes on a database holding a few months of calls.

    .venv/bin/python bench/retention.py [--calls 20000] [--days 120]
        [--database-url postgresql://postgres@127.0.0.1:5432/test]

Fills a fresh database (SQLite in a temporary folder by default) with `--calls` finished calls
spread evenly over the last `--days` days — each with two turns, a recording, a voicemail message
and a stored webhook answer — then times `ivr db prune --dry-run`'s count and the prune itself
(ivr.jobs.retention.run, default policy, no Twilio credentials: references only), and a second
prune (nothing left: the cost of an hourly run in steady state). Prints what went per kind.
A PostgreSQL URL gets its own schema, dropped afterwards.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def fill(engine, calls: int, days: float) -> None:
    from ivr.store.models import Call, IdempotentResponse, Message, Recording, Turn, utcnow

    now = utcnow()
    step = timedelta(days=days) / max(calls, 1)
    rows: dict[str, list[dict]] = {"calls": [], "turns": [], "recordings": [], "messages": [], "replies": []}
    for n in range(calls):
        sid = f"CA{n:032d}"
        at = now - step * n
        rows["calls"].append(dict(sid=sid, from_number=f"+1312555{n % 10000:04d}", to_number="+13115550000",
                                  language="en", state={"heard": "pothole on main", "prompt": "Did you say roads?"},
                                  pending_turn=None, status="completed", outcome="transferred", outcome_detail={},
                                  started_at=at, updated_at=at, ended_at=at))
        for step_name in ("welcome", "ask"):
            rows["turns"].append(dict(call_sid=sid, step=step_name, prompt="…", heard="there is a pothole",
                                      digits=None, confidence=0.8, classification={"top": "roads"},
                                      decision={"kind": "transfer"}, created_at=at))
        url = f"https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE{n:032d}"
        rows["recordings"].append(dict(call_sid=sid, url=url, kind="voicemail", duration_s=10.0, created_at=at))
        rows["messages"].append(dict(call_sid=sid, department="roads", kind="voicemail", recording_url=url,
                                     created_at=at))
        rows["replies"].append(dict(key=f"{sid}:/voice/turn:1:ask:", body="<Response/>", created_at=at))
    with engine.begin() as conn:
        for model, key in ((Call, "calls"), (Turn, "turns"), (Recording, "recordings"), (Message, "messages"),
                           (IdempotentResponse, "replies")):
            for start in range(0, len(rows[key]), 5000):
                conn.execute(model.__table__.insert(), rows[key][start:start + 5000])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--days", type=float, default=120)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()

    import sqlalchemy as sa
    from flask import Flask

    from ivr.jobs import retention
    from ivr.store import db

    schema, url, folder = None, args.database_url, tempfile.mkdtemp(prefix="ivr-retention-bench-")
    if url.startswith("postgresql"):
        schema = f"bench_retention_{os.getpid()}"
        admin = sa.create_engine(url)
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        url = f"{url}?options=-csearch_path%3D{schema}"
    elif not url:
        url = f"sqlite:///{folder}/ivr.sqlite3"
    app = Flask("retention-bench")
    app.config.update(IVR_DATABASE_URL=url, IVR_PROMPT_CACHE_DIR=f"{folder}/no-cache")
    db.init_app(app)
    try:
        started = time.perf_counter()
        fill(db.engine(app), args.calls, args.days)
        print(f"filled {args.calls} calls over {args.days:g} days in {time.perf_counter() - started:.1f} s "
              f"({db.engine(app).url.get_backend_name()})")
        for label, dry in (("count (--dry-run)", True), ("prune", False), ("prune again (steady state)", False)):
            started = time.perf_counter()
            report = retention.run(app, dry_run=dry)
            took = time.perf_counter() - started
            print(f"{label:28} {took:7.2f} s   " + ", ".join(f"{k} {v}" for k, v in report.counts.items()))
    finally:
        db.engine(app).dispose()
        if schema:
            with admin.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    print(f"load: {os.getloadavg()[0]:.1f} (1 min average; other work on the machine distorts the times)")


if __name__ == "__main__":
    main()
