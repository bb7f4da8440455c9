"""Cost of the conversation core per caller turn: decide() and render() on the shipped rules.

    .venv/bin/python bench/decide.py [--rounds 20]

Classifies the city's labelled utterances once, then times `decide` (pure) and `render` (TwiML
text via twilio's VoiceResponse, prompts faked as <Say>) over every utterance for `--rounds`
rounds, and prints p50/p99/max in microseconds plus the action mix.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ivr.routing.classify import Classifier  # noqa: E402
from ivr.routing.decide import decide  # noqa: E402
from ivr.routing.state import CallState, Turn
from ivr.routing.load import load_rules  # noqa: E402
from ivr.telephony.twiml import RenderContext, render  # noqa: E402

DEV = ROOT / "tests" / "data" / "dev_utterances_en.jsonl"
OPEN = datetime(2026, 3, 10, 15, 0, tzinfo=timezone.utc)   # a Tuesday morning in Chicago


def _say(verb, key, language, **values):  # stands in for ivr.prompts.speak (no Flask app here)
    verb.say(key + " " + " ".join(str(v) for v in values.values()), language=language)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    rules = load_rules(ROOT / "routing_rules.yaml")
    classifier = Classifier(rules)
    texts = [json.loads(line)["text"] for line in DEV.read_text(encoding="utf-8").splitlines() if line.strip()]
    turns = [(Turn(speech=t, asr_confidence=0.9), classifier.classify(t, "en")) for t in texts]
    state = CallState(step="ask", asks=1, seq=2)
    ctx = RenderContext(call_sid="CA" + "0" * 32, speak=_say, capture="twilio", public_url="https://ivr.example.gov")
    decide_us: list[float] = []
    render_us: list[float] = []
    kinds: Counter[str] = Counter()
    for _ in range(args.rounds):
        for turn, classification in turns:
            start = time.perf_counter()
            decision = decide(state, turn, classification, OPEN, rules)
            middle = time.perf_counter()
            str(render(decision, ctx))
            end = time.perf_counter()
            decide_us.append((middle - start) * 1e6)
            render_us.append((end - middle) * 1e6)
            kinds[decision.action.kind] += 1
    n = len(decide_us)
    for name, samples in (("decide", decide_us), ("render", render_us)):
        print(f"{name:7s} n={n} p50={percentile(samples, 0.5):.1f}us p99={percentile(samples, 0.99):.1f}us "
              f"max={max(samples):.1f}us mean={statistics.fmean(samples):.1f}us")
    print("actions:", ", ".join(f"{k}={v // args.rounds}" for k, v in kinds.most_common()))


if __name__ == "__main__":
    main()
