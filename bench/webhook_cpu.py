"""CPU per webhook in-process: the same simulated calls as bench/calls.py, through Flask's test client.

    .venv/bin/python bench/webhook_cpu.py [--calls 150] [--batches 3] [--profile 40]
        [--database-url postgresql://postgres@127.0.0.1:5432/test [--round-trips]] [--minimal] [--at ISO]
        [--store-split]

No server and no threads, so the number is the app's own work (plus the test client's, about
0.3 ms) and is steadier than a loaded machine's HTTP latency. Prints the CPU per webhook of each
batch and the lowest; `--profile N` adds cProfile's N most expensive functions (cumulative).
Also printed: the part of it the webhook's thread spent inside the app's WSGI callable (the rest
is the simulated caller — signing, the test client, parsing TwiML — and background threads such
as prompt renders). `--minimal` measures bench/calls.py's minimal
fixed-TwiML Flask app the same way instead: the floor the IVR is compared with.
Also printed: SQL statements per webhook (counted in one more batch, untimed), and with --round-trips on PostgreSQL the round trips
per webhook (in a run of their own: counting costs CPU), counted
in libpq's trace of the protocol (psycopg 3's pipeline mode sends several statements per round
trip: ivr/store/pipeline.py). `--store-split` adds what the store's entry points (the recall, the
stored answer with the commit, the other writes) cost per webhook, and their share of the app's time.
"""
from __future__ import annotations

import argparse
import cProfile
import gc
import json
import logging
import pstats
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from call_sim import TOKEN, Caller, Plan, Stats

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from ivr.telephony.simulator import FlaskTransport  # noqa: E402
UTTERANCES = ROOT / "tests" / "data" / "dev_utterances_en.jsonl"
PUBLIC = "http://127.0.0.1:5000"   # what the signatures are computed for; nothing listens there


class Statements:
    """Counts the SQL statements SQLAlchemy sends (either dialect), deferred writes included."""

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import event

        self.count = 0
        self.kinds: dict[str, int] = {}
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        self.count += 1
        kind = " ".join(statement.split()[:3])[:40]
        self.kinds[kind] = self.kinds.get(kind, 0) + 1


class RoundTrips:
    """Counts round trips to PostgreSQL on an engine's new connections, from libpq's own trace of
    the protocol messages each way (F: client, B: server)."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)
        self.files: list[Any] = []

    def install(self, engine: Any) -> None:
        """Count from now on: later connections are traced."""
        from psycopg.pq import Trace
        from sqlalchemy import event

        def on_connect(dbapi_conn: Any, _record: Any) -> None:
            trace = open(self.folder / f"trace-{len(self.files)}.txt", "w")  # noqa: SIM115 - closed in count
            self.files.append(trace)
            dbapi_conn.pgconn.trace(trace.fileno())
            dbapi_conn.pgconn.set_trace_flags(Trace.SUPPRESS_TIMESTAMPS | Trace.REGRESS_MODE)

        event.listen(engine, "connect", on_connect, insert=True)   # before the connection's own set-up
        engine.dispose()   # connections made before (migrations) do not count

    @property
    def count(self) -> int:
        """Round trips so far: each time the server answers after the client sent something (the
        client may send several statements, and several Syncs, before it waits)."""
        total = 0
        for trace in self.files:
            trace.flush()
            last = ""
            for line in Path(trace.name).read_text(errors="replace").splitlines():
                direction = line.split("\t", 1)[0]
                if direction == "B" and last == "F":
                    total += 1
                if direction in ("B", "F"):
                    last = direction
        return total


def in_process_caller(client: Any, stats: Stats, utterances: list[str]) -> Caller:
    """A Caller whose webhooks go straight into the app (Flask test client), not over TCP."""
    return Caller(FlaskTransport(client), PUBLIC, stats, utterances, 12, False, Plan(1, 1, 0, 0), float("inf"))


class StoreSplit:
    """`--store-split`: time spent in the store's entry points a webhook calls (a timer around each;
    nested calls count once), to see what the store costs inside the app's time: the recall
    (session, connection, the read and decoding the state), the stored answer with the commit,
    and the other writes. Wall time of one thread: in-process, that is its CPU."""

    POINTS = (("recall", "calls", "recall_with_state"), ("answer + commit", "replies", "remember_response"),
              ("other writes", "calls", "_write_json"), ("new call row", "calls", "start_call"),
              ("ended call", "calls", "end_call"))

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {label: 0.0 for label, _module, _name in self.POINTS}
        self._inside = False

    def install(self) -> None:
        from ivr.store import calls, replies
        modules = {"calls": calls, "replies": replies}
        for label, module, name in self.POINTS:
            setattr(modules[module], name, self._timed(label, getattr(modules[module], name)))

    def _timed(self, label: str, inner: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            if self._inside:
                return inner(*args, **kwargs)
            self._inside, started = True, time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - started
                self._inside = False
        return timed


class AppClock:
    """CPU seconds the request's own thread spent inside the app's WSGI callable (the view, hooks
    and Flask): not the background threads (prompt renders), which the process figure includes."""

    def __init__(self, app: Any) -> None:
        self.seconds = 0.0
        inner = app.wsgi_app

        def timed(environ: Any, start_response: Any) -> Any:
            started = time.thread_time()
            try:
                return inner(environ, start_response)
            finally:
                self.seconds += time.thread_time() - started

        app.wsgi_app = timed


def minimal_app() -> Any:
    """bench/calls.py's minimal fixed-TwiML Flask app (no signature check, no database)."""
    from calls import MINIMAL_APP

    namespace: dict[str, Any] = {"__name__": "minimal_app"}
    exec(compile(MINIMAL_APP, "minimal_app", "exec"), namespace)   # noqa: S102 - our own source text
    return namespace["app"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=150, help="calls per batch")
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--profile", type=int, default=0, help="print the N costliest functions")
    parser.add_argument("--sort", default="cumulative", help="profile order: cumulative or tottime")
    parser.add_argument("--profile-out", default="", help="also save the profile there (pstats file)")
    parser.add_argument("--database-url", default="", help="default: a fresh SQLite file")
    parser.add_argument("--round-trips", action="store_true",
                        help="PostgreSQL: count round trips (libpq traces every message: CPU figures grow)")
    parser.add_argument("--minimal", action="store_true", help="measure the minimal fixed-TwiML app instead")
    parser.add_argument("--store-split", action="store_true",
                        help="also print what the store's entry points cost per webhook (timers on: ~1 us more each)")
    parser.add_argument("--at", default="", help="the line's clock, fixed (ISO 8601 with offset), e.g. "
                        "2026-03-11T03:00:00+00:00: a night, when callers report problems and hear case "
                        "numbers (per-call prompts); default: now, so the figures depend on the hour")
    args = parser.parse_args()
    at = datetime.fromisoformat(args.at) if args.at else None
    if at is not None and at.tzinfo is None:   # the store refuses naive times: every turn would fail
        raise SystemExit(f"--at needs a UTC offset, e.g. {args.at}+00:00 (got {args.at!r})")
    if not 1 <= args.calls <= 5000 or not 1 <= args.batches <= 20:
        raise SystemExit("--calls must be 1..5000 and --batches 1..20")
    utterances = [json.loads(line)["text"] for line in UTTERANCES.read_text().splitlines() if line.strip()]
    from ivr import create_app
    from ivr.store import db

    with tempfile.TemporaryDirectory(prefix="ivr-cpu-") as tmp:
        statements, counted = None, 0
        if args.minimal:
            app = minimal_app()
        else:
            app = create_app({"IVR_DATABASE_URL": args.database_url or f"sqlite:///{tmp}/cpu.sqlite3",
                              "TWILIO_AUTH_TOKEN": TOKEN, "IVR_PUBLIC_URL": PUBLIC, "IVR_CAPTURE": "twilio",
                              "IVR_SPEECH_ENGINE": "twilio",
                              **({"IVR_CLOCK": lambda: at} if at else {})})
        logging.getLogger().setLevel(logging.WARNING)   # one INFO line per call is not the subject
        gc.freeze()   # as app.py does under gunicorn
        trips = None
        if not args.minimal and args.round_trips and db.engine(app).dialect.driver == "psycopg":
            trips = RoundTrips(tmp)
            trips.install(db.engine(app))
        split = StoreSplit() if args.store_split and not args.minimal else None
        if split:
            split.install()
        clock = AppClock(app)
        client = app.test_client()
        warm = in_process_caller(client, Stats(), utterances)
        for n in range(20):   # first use renders prompts and fills caches
            warm.call(n)
        profile = cProfile.Profile() if args.profile else None
        per_batch, in_app, wall = [], [], []
        cache = Path(app.config.get("IVR_PROMPT_CACHE_DIR") or tmp)   # the minimal app has none
        files_before, fetches = len(list(cache.glob("*.wav"))), 0
        trips_before, webhooks = (trips.count if trips else 0), 0
        for batch in range(args.batches):
            stats = Stats()
            caller = in_process_caller(client, stats, utterances)
            if profile:
                profile.enable()
            started, clock.seconds, wall_started = time.process_time(), 0.0, time.perf_counter()
            if split:
                split.seconds = dict.fromkeys(split.seconds, 0.0)   # the last batch's are printed
            for n in range(args.calls):
                caller.call(1000 + batch * args.calls + n)
            per_batch.append((time.process_time() - started) * 1000 / max(stats.steps, 1))
            in_app.append(clock.seconds * 1000 / max(stats.steps, 1))
            if split:   # this batch's share (the untimed batch below calls the app again)
                store_part = (sum(split.seconds.values()) / max(clock.seconds, 1e-9),
                              {label: seconds * 1e6 / max(stats.steps, 1) for label, seconds in split.seconds.items()})
            wall.append((time.perf_counter() - wall_started) * 1000 / max(stats.steps, 1))
            webhooks += stats.steps
            fetches += len(stats.prompt_fetches_ms)
            if profile:
                profile.disable()
            if (stats.errors or stats.rescued) and not args.minimal:   # the minimal app's calls never end
                print(f"batch {batch}: errors {stats.errors[:3]}, rescued answers {stats.rescued}")
        trips_after = trips.count if trips else 0   # the traces are in `tmp`
        if not args.minimal:
            # Counted in a batch of their own, after the timed ones: a listener on every statement
            # (a connection event) switches on SQLAlchemy's dispatch of every connection event for
            # every statement, which the app does not pay (ivr/store/sqlite.py).
            statements, counting = Statements(db.engine(app)), Stats()
            counter = in_process_caller(client, counting, utterances)
            for n in range(args.calls):
                counter.call(1000 + args.batches * args.calls + n)
            counted = counting.steps
        if "ivr.prompt_audio" in app.extensions:
            app.extensions["ivr.prompt_audio"].wait_idle()
        renders = len(list(cache.glob("*.wav"))) - files_before   # prompts not on disk before: per-call texts
    print(f"CPU per webhook (ms): {' '.join(f'{value:.2f}' for value in per_batch)}  lowest "
          f"{min(per_batch):.2f}  ({stats.steps} webhooks per batch, profiler "
          f"{'on: times inflated' if profile else 'off'})")
    best = per_batch.index(min(per_batch))
    print(f"  of which inside the app (ms): {' '.join(f'{value:.2f}' for value in in_app)}  in the lowest "
          f"batch {in_app[best]:.2f}")
    # Wall time includes what a webhook waits for without using CPU (a prompt render, once).
    print(f"  wall time per webhook (ms): {' '.join(f'{value:.2f}' for value in wall)}")
    if not args.minimal:
        # The process CPU above includes these renders (background threads) and the fetches
        # (Twilio's GETs of render-on-fetch URLs, made by the simulated caller; not webhooks).
        print(f"prompt renders per 1,000 webhooks: {renders * 1000 / max(webhooks, 1):.1f} ({renders} new files); "
              f"render-on-fetch GETs per 1,000 webhooks: {fetches * 1000 / max(webhooks, 1):.1f}")
    if split:
        share, per_webhook = store_part
        print(f"  the store's part of it in the last batch: {sum(per_webhook.values()):.0f} us per webhook "
              f"({share:.0%} of the time inside the app): "
              + ", ".join(f"{label} {us:.0f} us" for label, us in per_webhook.items()))
    if statements:
        print(f"SQL statements per webhook: {statements.count / max(counted, 1):.2f} (a batch of its own; "
              + ", ".join(f"{kind!r} {n / max(counted, 1):.2f}" for kind, n in
                          sorted(statements.kinds.items(), key=lambda item: -item[1])) + ")")
    if trips:
        print(f"PostgreSQL round trips per webhook: {(trips_after - trips_before) / max(webhooks, 1):.2f}")
    if profile:
        if args.profile_out:
            profile.dump_stats(args.profile_out)
        pstats.Stats(profile).sort_stats(args.sort).print_stats(args.profile)


if __name__ == "__main__":
    main()
