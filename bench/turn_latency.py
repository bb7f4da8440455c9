"""Caller's last word → media stream closed (the decision), over a real server on localhost.

    .venv/bin/python bench/turn_latency.py [--count 12] [--engine auto|whisper|pocketsphinx|vosk]

Each utterance from tests/data/dev_utterances_en.jsonl is synthesised (piper, cached), sent by
the fake Twilio client in real-time 20 ms frames, followed by line silence until the server
closes the stream. Latency is measured from the frame that carries the end of the last word (by
energy) to the moment the client sees the close. Prints p50/p90/p99/max, how turns ended (early
on a confident partial vs trailing silence) and how many heard texts route to the labelled
department, decodes per turn (Whisper: speculative ones thrown away) and the load average. Target
(issue 9, one caller): median ≤ 450 ms, goal 300 ms. The server is the development server in this
process (one app, one decode pool with IVR_DECODE_THREADS threads, default one per core); for the
production command use bench/stream_calls.py --callers 1.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from werkzeug.serving import make_server  # noqa: E402

from ivr.telephony.simulator import MediaStream  # noqa: E402
from tests.speechgen import last_voice_ms, phone_pcm, synthesize_phone_audio  # noqa: E402

UTTERANCES = ROOT / "tests" / "data" / "dev_utterances_en.jsonl"
TOKEN = "bench-auth-token"
PUBLIC = "https://ivr.bench.test"


def load() -> str:
    """The load average (1, 5, 15 min): on a shared 2-core machine, what the wall clock also measured."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=12, help="utterances to run (default 12)")
    parser.add_argument("--engine", default="auto",
                        help="IVR_SPEECH_ENGINE_EN: auto (default: what production runs; Whisper when "
                             "installed), whisper, pocketsphinx or vosk")
    args = parser.parse_args()

    from ivr import create_app
    from ivr.rules_source import current_classifier
    from sqlalchemy import select

    from ivr.store import calls, db
    from ivr.store.models import Event

    rows = [json.loads(line) for line in UTTERANCES.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r.get("department")][: args.count]
    tmp = Path(tempfile.mkdtemp(prefix="ivr-bench-"))
    app = create_app({"IVR_DATABASE_URL": f"sqlite:///{tmp / 'ivr.sqlite3'}", "IVR_PUBLIC_URL": PUBLIC,
                      "TWILIO_AUTH_TOKEN": TOKEN, "IVR_CAPTURE": "stream",
                      "IVR_SPEECH_ENGINE": "auto", "IVR_SPEECH_ENGINE_EN": args.engine, "IVR_PROMPT_CACHE_DIR": str(tmp / "prompts")})
    from ivr.speech.service import speech_service

    with app.app_context():  # load the model before the first timed turn
        engine = speech_service().engine_for("en")
        if hasattr(engine, "warm"):
            engine.warm()
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"ws://127.0.0.1:{httpd.server_port}/voice/stream"

    print(f"engine {args.engine} ({getattr(engine, 'description', getattr(engine, 'name', '?'))}); "
          f"load average {load()}")
    latencies: list[float] = []
    reasons: dict[str, int] = {}
    decodes: list[int] = []
    routed_right = 0
    cut_short = 0
    for index, row in enumerate(rows):
        audio = phone_pcm(synthesize_phone_audio(row["text"])).pcm16
        sid = f"CAbench{index:04d}"
        with MediaStream(url, call_sid=sid, parameters={"step": "ask", "n": "1", "language": "en"},
                         auth_token=TOKEN, signed_url=PUBLIC.replace("https", "wss") + "/voice/stream") as twilio:
            twilio.send_audio(audio)
            twilio.send_silence(3000)
            twilio.wait_closed(2)
        end_frame = last_voice_ms(audio) // 20 - 1
        if twilio.heard.closed_at is None or end_frame >= len(twilio.frame_times):
            print(f"  {sid}: closed before the caller's last word (or never); not timed")
            cut_short += 1
            continue
        latencies.append((twilio.heard.closed_at - twilio.frame_times[end_frame]) * 1000)
        with app.app_context():
            turn = calls.pending_turn(db.session(), sid)
            event = db.session().scalars(select(Event).where(Event.call_sid == sid,
                                                             Event.kind == "stream_turn")).first()
            detail = event.detail if event is not None else {}
            reason = detail.get("reason", "?")
            heard = turn.speech if turn else None
            top = current_classifier().classify(heard, "en").top if heard else None
            db.session().commit()
        reasons[reason] = reasons.get(reason, 0) + 1
        if "decodes" in detail:
            decodes.append(detail["decodes"])
        routed_right += bool(top and top.department == row["department"])
        print(f"  {latencies[-1]:6.0f} ms  {reason:8s} finish={detail.get('finish_ms', '?')} ms "
              f"decodes={detail.get('decodes', '-')}  heard={heard!r}")
    httpd.shutdown()
    if not latencies:
        print("no measurements", file=sys.stderr)
        return 1
    median = statistics.median(latencies)
    print(f"turn latency (last word → stream closed), n={len(latencies)}: "
          f"p50={median:.0f} ms p90={percentile(latencies, 90):.0f} ms "
          f"p99={percentile(latencies, 99):.0f} ms max={max(latencies):.0f} ms   "
          f"target: median ≤ 450 ms, goal 300 ms [{'MET' if median <= 450 else 'MISSED'}]; load average {load()}")
    if decodes:
        print(f"decodes: {sum(decodes)} for {len(decodes)} turns ({sum(decodes) / len(decodes):.2f} per turn; "
              f"{sum(decodes) - sum(1 for d in decodes if d)} thrown away)")
    print(f"ended by: {reasons}; closed before the last word: {cut_short}; heard text routes to the labelled department: {routed_right}/{len(latencies)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
