"""What the Open311 endpoint costs with a city's worth of service requests stored.

    .venv/bin/python bench/open311.py [--stored 20000] [--days 120] [--rounds 50]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test]

Fills a fresh database (SQLite in a temporary folder by default; a PostgreSQL URL gets its own
schema, dropped afterwards) with `--stored` requests spread over the last `--days` days, then
drives the app in-process (Flask's test client: no network, so the figures are the app's and the
database's own cost) and prints, per call, the wall-clock p50/p99 and the process CPU time per
request:

- GET requests.json and requests.xml with the default window (the last 90 days, at most 1000);
- GET requests.json?status=closed&service_code=pothole (an index-served filter);
- GET requests/{id}.xml (one request);
- POST requests.json (a new request: store, outbox notification, audit, commit).

Run on a quiet machine for latency; the load average is printed beside the numbers.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def fill(engine, stored: int, days: float) -> list[str]:
    """`stored` requests (one in three closed) over `days` days; their case numbers."""
    from ivr.routing.load import load_rules
    from ivr.routing.services import all_services, new_case_number
    from ivr.store.models import utcnow
    from ivr.store.service_requests import ServiceRequestRow

    services = all_services(load_rules(ROOT / "routing_rules.yaml"))
    rng = random.Random(311)
    now, step = utcnow(), timedelta(days=days) / max(stored, 1)
    cases: set[str] = set()
    rows = []
    while len(cases) < stored:
        case = new_case_number(rng, 9)      # 9 digits: no clash to handle while bulk loading
        if case in cases:
            continue
        cases.add(case)
        n = len(rows)
        service = services[n % len(services)]
        at = now - step * n
        rows.append(dict(case_number=case, source_key=f"bench:{n}", channel=("voice", "sms", "open311")[n % 3],
                         service_code=service.code, service_name=service.name["en"], intent=service.intent,
                         department=service.department, description=f"report number {n}: something is broken",
                         address=f"{n % 900 + 1} Main Street", lat=41.8 + (n % 100) / 1000, long=-87.6,
                         language="en", contact_phone=f"+1312555{n % 10000:04d}", contact_email=None,
                         text_consent=True, call_sid=None, media_url=None,
                         status="closed" if n % 3 == 0 else "open", status_notes="", created_at=at, updated_at=at))
    with engine.begin() as conn:
        for start in range(0, len(rows), 2000):
            conn.execute(ServiceRequestRow.__table__.insert(), rows[start:start + 2000])
    return sorted(cases)


def timed(label: str, rounds: int, call) -> None:
    walls, cpu0 = [], time.process_time()
    for n in range(rounds):
        start = time.perf_counter()
        call(n)
        walls.append((time.perf_counter() - start) * 1000)
    cpu = (time.process_time() - cpu0) * 1000 / rounds
    walls.sort()
    p99 = walls[min(len(walls) - 1, int(len(walls) * 0.99))]
    print(f"{label:52} p50 {statistics.median(walls):7.1f} ms  p99 {p99:7.1f} ms  CPU {cpu:6.1f} ms/request")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stored", type=int, default=20000)
    parser.add_argument("--days", type=float, default=120)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()

    import sqlalchemy as sa

    from ivr import create_app
    from ivr.store import db, tokens

    schema = None
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'ivr.sqlite3'}"
        if args.database_url.startswith("postgresql"):
            schema = f"bench_open311_{os.getpid()}"
            admin = sa.create_engine(args.database_url)
            with admin.begin() as conn:
                conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
            url = f"{args.database_url}?options=-csearch_path%3D{schema}"
        try:
            engine = db.make_engine(url)
            db.upgrade(engine)
            began = time.perf_counter()
            cases = fill(engine, args.stored, args.days)
            print(f"stored {len(cases)} requests over {args.days:g} days in {time.perf_counter() - began:.1f} s "
                  f"({engine.dialect.name}); load average {os.getloadavg()[0]:.1f}")
            app = create_app({"IVR_DATABASE_URL": url, "IVR_JOBS_DB": str(Path(tmp) / "jobs.sqlite3"),
                              "IVR_PROMPT_CACHE_DIR": str(Path(tmp) / "prompts"), "IVR_TTS": "off",
                              "IVR_SPEECH_ENGINE": "keypad", "IVR_CAPTURE": "twilio", "TESTING": True})
            with app.app_context():
                s = db.session()
                key = tokens.add(s, "bench", [tokens.SCOPE_OPEN311])
                s.commit()
            client = app.test_client()

            def get(path):
                def call(_n):
                    response = client.get(path)
                    assert response.status_code == 200, response.data[:200]
                return call

            first = client.get("/open311/v2/requests.json").get_json()
            print(f"GET requests.json returns {len(first)} requests (default window: the last 90 days, at most 1000)")
            timed("GET requests.json (default window)", args.rounds, get("/open311/v2/requests.json"))
            timed("GET requests.xml (default window)", args.rounds, get("/open311/v2/requests.xml"))
            timed("GET requests.json?status=closed&service_code=pothole", args.rounds,
                  get("/open311/v2/requests.json?status=closed&service_code=pothole"))
            timed("GET requests/{id}.xml", args.rounds * 4,
                  lambda n: get(f"/open311/v2/requests/{cases[n * 37 % len(cases)]}.xml")(n))

            def create(n):
                response = client.post("/open311/v2/requests.json", data={
                    "api_key": key, "service_code": "pothole", "lat": "41.88", "long": "-87.63",
                    "description": f"bench pothole {n}"})
                assert response.status_code == 201, response.data[:200]

            timed("POST requests.json (new request)", args.rounds * 2, create)
            print(f"load average after: {os.getloadavg()[0]:.1f}")
        finally:
            engine.dispose()
            if schema:
                with admin.begin() as conn:
                    conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
                admin.dispose()


if __name__ == "__main__":
    main()
