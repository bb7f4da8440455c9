"""Outbox throughput: N texts queued, delivered by `ivr worker` processes to the fake Twilio REST API.

    .venv/bin/python bench/outbox.py [--messages 10000] [--workers 2] [--threads 2] [--batch 50]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test] [--redis-url redis://127.0.0.1:6379/12]

1. Starts the fake Twilio REST API (tests/fake_twilio_rest.py) in a process of its own, so it
   does not share a GIL with what is measured.
2. Queues `--messages` texts through ivr.outbox.send_sms, in transactions of 500 (timed: the cost
   a webhook or `ivr alerts send` pays per text).
3. Starts `--workers` real `ivr worker` processes (`--threads` threads each) on the same
   database and job queue (SQLite file by default, Redis with --redis-url), wakes them, and times
   until no row is waiting. The clock starts at the wake-up, after the workers said they started.
4. Checks: every row sent, every provider id different, and the fake handed out exactly N message
   SIDs (its counter is global: a duplicate send would show as a SID above N).

Prints messages/s, the workers' CPU seconds per message (utime+stime from /proc: comparable on a
loaded machine, unlike wall time) and the load average before and after. A PostgreSQL URL gets its
own schema, dropped afterwards.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

_FAKE = ("import sys, time; sys.path.insert(0, sys.argv[1]);"
         "from fake_twilio_rest import FakeTwilioRest; fake = FakeTwilioRest().start();"
         "print(fake.url, flush=True); time.sleep(10**6)")


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a live process (and its waited-for children), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(x) for x in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def _schema_url(url: str) -> tuple[str, str | None]:
    if not url.startswith("postgresql"):
        return url, None
    import sqlalchemy as sa

    schema = f"bench_outbox_{os.getpid()}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    return f"{url}?options=-csearch_path%3D{schema}", schema


def _drop_schema(url: str, schema: str | None) -> None:
    if schema:
        import sqlalchemy as sa

        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10000)
    parser.add_argument("--workers", type=int, default=2, help="`ivr worker` processes")
    parser.add_argument("--threads", type=int, default=2, help="threads per worker (ivr worker --workers)")
    parser.add_argument("--batch", type=int, default=50, help="IVR_OUTBOX_BATCH: rows claimed at once")
    parser.add_argument("--database-url", default="")
    parser.add_argument("--redis-url", default="", help="put the job queue on Redis (default: a SQLite file)")
    args = parser.parse_args()

    from sqlalchemy.orm import Session

    from fake_twilio_rest import ACCOUNT_SID, AUTH_TOKEN

    folder = Path(tempfile.mkdtemp(prefix="bench-outbox-"))
    base_url = args.database_url or f"sqlite:///{folder / 'ivr.sqlite3'}"
    url, schema = _schema_url(base_url)
    fake = subprocess.Popen([sys.executable, "-c", _FAKE, str(ROOT / "tests")], stdout=subprocess.PIPE, text=True)
    workers: list[subprocess.Popen] = []
    try:
        fake_url = fake.stdout.readline().strip()   # type: ignore[union-attr]
        queue = {"IVR_REDIS_URL": args.redis_url} if args.redis_url else {"IVR_JOBS_DB": str(folder / "jobs.sqlite3")}
        settings = {"IVR_DATABASE_URL": url, "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                    "IVR_TWILIO_API_URL": fake_url, "IVR_SMS_FROM": "+13125550311",
                    "IVR_OUTBOX_BATCH": str(args.batch), "IVR_PROMPT_CACHE_DIR": str(folder / "prompts"),
                    "IVR_SPEECH_ENGINE": "twilio", "IVR_CAPTURE": "twilio", "IVR_TTS": "off", **queue}
        os.environ.update(settings)
        from ivr import create_app, jobs, outbox
        from ivr.jobs.outbox import deliver_task
        from ivr.store import db
        from ivr.store import outbox as store

        app = create_app({"IVR_WARM": False})
        jobs.huey.flush()
        engine = db.engine(app)
        # Queue without waking anyone: the workers start on the whole backlog at once.
        outbox_wakers, outbox._wakers[:] = list(outbox._wakers), []
        started = time.perf_counter()
        for first in range(0, args.messages, 500):
            with Session(engine) as s:
                for n in range(first, min(first + 500, args.messages)):
                    outbox.send_sms(s, to=f"+1312{n:07d}", body=f"Water main break on Elm St: crews on site ({n})",
                                    key=f"bench:{n}", purpose="alert")
                s.commit()
        queued_s = time.perf_counter() - started
        outbox._wakers[:] = outbox_wakers

        env = {**os.environ}
        logs = [open(folder / f"worker-{i}.log", "w") for i in range(args.workers)]
        workers = [subprocess.Popen([sys.executable, "-m", "ivr.cli", "worker", "--workers", str(args.threads),
                                     "--no-periodic"], env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
                   for log in logs]
        while not all("Huey consumer started" in (folder / f"worker-{i}.log").read_text() for i in range(args.workers)):
            if any(w.poll() is not None for w in workers):
                raise SystemExit("a worker exited: see " + str(folder))
            time.sleep(0.2)
        cpu_before = sum(_cpu_seconds(w.pid) for w in workers)
        load_before = os.getloadavg()
        started = time.perf_counter()
        for _ in range(args.workers * args.threads):
            deliver_task()               # one wake-up per drainer
        while True:
            with Session(engine) as s:
                waiting = store.stats(s).waiting
            if waiting == 0:
                break
            time.sleep(0.1)
        elapsed = time.perf_counter() - started
        cpu = sum(_cpu_seconds(w.pid) for w in workers) - cpu_before
        load_after = os.getloadavg()
        with Session(engine) as s:
            rows = store.search(s, limit=args.messages + 10)
        sent = [r for r in rows if r.status == "sent"]
        sids = {r.provider_id for r in sent}
        highest = max(int(sid[2:], 16) for sid in sids) if sids else 0
        processes = {r.claimed_by.split(":")[1] for r in sent if r.claimed_by}
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=30)
        fake.terminate()
        fake.wait(timeout=10)
        _drop_schema(base_url, schema)

    backend = "postgresql" if url.startswith("postgresql") else "sqlite"
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"database {backend}, queue {'redis' if args.redis_url else 'sqlite'}, {args.workers} worker process(es) "
          f"x {args.threads} thread(s), batch {args.batch}, {os.cpu_count()} CPU(s)")
    print(f"queued   {args.messages} texts in {queued_s:.2f} s ({args.messages / queued_s:.0f}/s, "
          f"{queued_s / args.messages * 1000:.2f} ms each, transactions of 500)")
    print(f"drained  {len(sent)} sent in {elapsed:.2f} s: {len(sent) / elapsed:.0f} messages/s")
    print(f"workers' CPU {cpu:.1f} s: {cpu / max(len(sent), 1) * 1000:.2f} ms per message "
          f"(both workers took part: {len(processes) == args.workers})")
    print(f"checks   all sent: {len(sent) == args.messages}; distinct SIDs: {len(sids)}; "
          f"fake's highest SID number: {highest} (== {args.messages} means no duplicate send)")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min)")
    if len(sent) != args.messages or len(sids) != args.messages or highest != args.messages:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
