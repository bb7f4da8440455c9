"""Classifier latency and throughput over the labelled utterances; prints numbers, asserts nothing.

    .venv/bin/python bench/classify.py [--rules PATH] [--repeat N] [--batch-lines N]

Prints the build time, p50/p99/max latency per utterance, single-core throughput, and the time
`ivr route --batch` takes (in-process, output discarded) for N lines. Target: p99 ≤ 1 ms.
"""
from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ivr.cli.route import Router, city_timezone, parse_when, run_batch  # noqa: E402  (path set up above)
from ivr.routing.classify import Classifier  # noqa: E402
from ivr.routing.load import load_rules  # noqa: E402

DATA = [ROOT / "tests" / "data" / "dev_utterances_en.jsonl",
        *sorted((ROOT / "tests" / "data").glob("utterances_*.jsonl"))]


def _utterances() -> list[tuple[str, str]]:
    items = []
    for path in DATA:
        if not path.exists():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            item = json.loads(line)
            items.append((item["text"], item.get("lang", "es" if "_es" in path.stem else "en")))
    return items


def main() -> None:
    """Run the benchmark and print its numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", default=str(ROOT / "routing_rules.yaml"))
    parser.add_argument("--repeat", type=int, default=20, help="passes over the utterances")
    parser.add_argument("--batch-lines", type=int, default=10_000)
    parser.add_argument("--asr", action="store_true",
                        help="also route recognised speech: the dev set spoken by piper's voice "
                             "(tests/speechgen.py, cached) and transcribed by the local engine")
    args = parser.parse_args()

    rules = load_rules(args.rules)
    start = time.perf_counter()
    classifier = Classifier(rules)
    build_ms = (time.perf_counter() - start) * 1000
    utterances = _utterances()
    for text, language in utterances:  # warm-up: fills caches as a running server would have them
        classifier.classify(text, language)

    samples_us: list[float] = []
    wall = time.perf_counter()
    for _ in range(args.repeat):
        for text, language in utterances:
            t0 = time.perf_counter_ns()
            classifier.classify(text, language)
            samples_us.append((time.perf_counter_ns() - t0) / 1000)
    wall = time.perf_counter() - wall
    samples_us.sort()
    p = lambda q: samples_us[min(len(samples_us) - 1, int(q * len(samples_us)))]  # noqa: E731
    print(f"rules: {args.rules} ({len(rules.intents)} intents, {len(rules.languages)} languages)")
    print(f"classifier build: {build_ms:.1f} ms")
    print(f"utterances: {len(utterances)} × {args.repeat} = {len(samples_us)} classifications")
    print(f"latency per utterance: p50 {p(0.50):.0f} µs  p99 {p(0.99):.0f} µs  max {samples_us[-1]:.0f} µs  "
          f"mean {statistics.fmean(samples_us):.0f} µs")
    print(f"throughput: {len(samples_us) / wall:,.0f} utterances/s on one core")

    router = Router(rules, classifier, city_timezone(rules))
    lines = [json.dumps({"text": text, "lang": language, "id": i})
             for i, (text, language) in enumerate(utterances * (args.batch_lines // len(utterances) + 1))]
    lines = lines[: args.batch_lines]
    now = parse_when("2026-03-02T10:00", router.timezone)
    t0 = time.perf_counter()
    errors = run_batch(router, lines, ROOT, None, now, io.StringIO(), as_json=True)
    batch_s = time.perf_counter() - t0
    print(f"ivr route --batch (in-process, classify + decide + JSON): {len(lines):,} lines in {batch_s:.2f} s "
          f"({len(lines) / batch_s:,.0f} lines/s, {errors} errors)")
    if args.asr:
        asr_accuracy(rules, classifier)


def asr_accuracy(rules, classifier: Classifier) -> None:  # type: ignore[no-untyped-def]
    """Top-1 and emergency recall on what the recogniser heard, not on the typed text."""
    sys.path.insert(0, str(ROOT / "tests"))
    from speechgen import synthesize_phone_audio

    from ivr.speech.transcribe import transcribe_file

    right = total = heard = emergencies = 0
    started = time.perf_counter()
    for line in DATA[0].read_text(encoding="utf-8").splitlines():
        case = json.loads(line)
        transcript, engine, _ = transcribe_file(synthesize_phone_audio(case["text"]), "en", rules)
        result = classifier.classify(transcript, "en")
        if case.get("action") == "emergency":
            emergencies += 1
            heard += result.emergency
        else:
            total += 1
            top = next((c for c in result.candidates if c.intent), None)
            right += bool(top and top.department == case["department"] and not result.emergency)
    print(f"on {engine} transcripts of {DATA[0].name} ({time.perf_counter() - started:.0f} s): "
          f"top-1 {right}/{total} = {right / total:.1%}, emergencies recognised {heard}/{emergencies}")


if __name__ == "__main__":
    main()
