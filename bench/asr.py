"""Routing accuracy on telephone audio: dev utterances → piper speech → 8 kHz μ-law → recogniser → classifier.

Prints department accuracy, emergency recall (and how many came only from the embedded engine's
emergency watch, `ivr.speech.emergency`), false emergencies on the ordinary calls, the rate of
wrong departments the line would route without confirming (confidence ≥ thresholds.route), word
error rate and real-time factor, next to the same classifier on the typed text (so the
recogniser's cost is visible). `--no-watch` gives the numbers without the watch.

    .venv/bin/python bench/asr.py [--engine pocketsphinx] [--limit N] [--show-errors] [--file F.jsonl] [--no-watch]

Sets: the dev utterances (default), bench/data/heldout_en.jsonl (written apart from the dev set),
bench/data/emergency_probe_en.jsonl (16 new emergencies and 14 ordinary calls with emergency-like
words, written to test the watch, never tuned on).

Speech is cached in .cache/speech/ (first run synthesises ~180 files, a few minutes).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from ivr.config import from_environment  # noqa: E402
from ivr.routing.classify import Classifier  # noqa: E402
from ivr.routing.rules import load_rules  # noqa: E402
from ivr.speech.audio import read_wav  # noqa: E402
from ivr.speech.emergency import emergency_in_alternatives  # noqa: E402
from ivr.speech.service import SpeechService  # noqa: E402
from speechgen import synthesize_phone_audio  # noqa: E402

DEV = ROOT.parent / "shared" / "city" / "dev_utterances_en.jsonl"


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edit distance in words, reference length) with the recogniser's normalisation."""
    from ivr.speech.lm import normalize

    ref, hyp = normalize(reference), normalize(hypothesis)
    row = list(range(len(hyp) + 1))
    for i in range(1, len(ref) + 1):
        diagonal, row[0] = row[0], i
        for j in range(1, len(hyp) + 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (ref[i - 1] != hyp[j - 1]))
    return row[len(hyp)], len(ref)


def outcome(classification, rules, expected: dict, watch: str | None = None) -> tuple[bool, bool]:
    """(correct, wrong and confident enough to route without confirming).

    `watch` is the emergency watch's verdict (`ivr.speech.emergency`), which overrides routing.
    """
    emergency = classification.emergency or bool(watch)
    if expected.get("action") == "emergency":
        return emergency, False
    top = classification.top
    department = None if emergency or top is None else top.department
    correct = department == expected["department"]
    unconfirmed = (not correct and department is not None
                   and classification.confidence >= rules.thresholds.route)
    return correct, unconfirmed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", default="pocketsphinx", choices=("pocketsphinx", "vosk"))
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--show-errors", action="store_true")
    parser.add_argument("--file", type=Path, default=DEV,
                        help="labelled utterances (JSON Lines); bench/data/heldout_en.jsonl is a small "
                             "set written apart from the dev set")
    parser.add_argument("--no-watch", action="store_true",
                        help="without the embedded engine's emergency watch (the before/after comparison)")
    args = parser.parse_args()

    rules = load_rules(ROOT / "routing_rules.yaml")
    classifier = Classifier(rules)
    config = {**from_environment(), "IVR_SPEECH_ENGINE": args.engine}
    if args.no_watch:
        config["IVR_EMERGENCY_WATCH"] = "0"
    service = SpeechService(config, lambda: rules, ROOT / "instance" / "speech-cache")
    started = time.perf_counter()
    engine = service.engine_for("en")
    load_seconds = time.perf_counter() - started
    items = [json.loads(line) for line in args.file.read_text().splitlines() if line.strip()]
    items = items[: args.limit] if args.limit else items

    stats = {"n": 0, "ok": 0, "text_ok": 0, "unconfirmed": 0, "emerg": 0, "emerg_hit": 0, "false_emerg": 0, "watch_hits": 0,
             "errors": 0, "words": 0, "audio": 0.0, "decode": 0.0}
    for item in items:
        audio = read_wav(synthesize_phone_audio(item["text"]))
        began = time.perf_counter()
        recognizer = engine.recognizer(audio.sample_rate)
        for start in range(0, len(audio.pcm16), 320):     # 20 ms frames, as a live call sends
            recognizer.accept(audio.pcm16[start:start + 320])
        result = recognizer.finish()
        stats["decode"] += time.perf_counter() - began
        stats["audio"] += audio.duration
        errors, words = word_errors(item["text"], result.text)
        stats["errors"] += errors
        stats["words"] += words
        classification = classifier.classify(result.text, "en")
        watch = None if classification.emergency else emergency_in_alternatives(classifier, result, "en")
        correct, unconfirmed = outcome(classification, rules, item, watch)
        text_correct, _ = outcome(classifier.classify(item["text"], "en"), rules, item)
        stats["n"] += 1
        stats["ok"] += correct
        stats["text_ok"] += text_correct
        stats["unconfirmed"] += unconfirmed
        stats["watch_hits"] += bool(watch)
        if item.get("action") == "emergency":
            stats["emerg"] += 1
            stats["emerg_hit"] += correct
        elif classification.emergency or watch:
            stats["false_emerg"] += 1
            print(f"  FALSE EMERGENCY {item['text']!r} → heard {result.text!r} ({watch or 'transcript'})")
        if args.show_errors and not correct:
            label = item.get("department") or item.get("action")
            print(f"  MISS [{label}] {item['text']!r} → heard {result.text!r} ({result.confidence:.2f})")

    n = stats["n"]
    print(f"engine                 {engine.name} (loaded in {load_seconds:.2f} s)")
    print(f"utterances             {n} ({stats['emerg']} emergencies), {stats['audio']:.0f} s of audio")
    print(f"department accuracy    {stats['ok'] / n:.1%}  (typed text: {stats['text_ok'] / n:.1%})")
    print(f"emergency recall       {stats['emerg_hit'] / max(stats['emerg'], 1):.1%}  "
          f"({stats['emerg_hit']}/{stats['emerg']}; {stats['watch_hits']} from the emergency watch)")
    print(f"false emergencies      {stats['false_emerg']} of {n - stats['emerg']} ordinary calls")
    print(f"wrong, no confirmation {stats['unconfirmed'] / n:.1%}  (confidence ≥ {rules.thresholds.route})")
    print(f"word error rate        {stats['errors'] / max(stats['words'], 1):.1%}")
    print(f"real-time factor       {stats['decode'] / stats['audio']:.3f}  (decode seconds per audio second, 1 thread)")


if __name__ == "__main__":
    main()
