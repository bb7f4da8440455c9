"""Routing accuracy on telephone audio: dev utterances → piper speech → 8 kHz μ-law → recogniser → classifier.

Prints department accuracy, emergency recall (and how many came only from the embedded engine's
emergency watch, `ivr.speech.emergency`), false emergencies on the ordinary calls, the rate of
wrong departments the line would route without confirming (confidence ≥ thresholds.route), word
error rate and real-time factor, next to the same classifier on the typed text (so the
recogniser's cost is visible). `--no-watch` gives the numbers without the watch.

    .venv/bin/python bench/asr.py [--engine pocketsphinx] [--limit N] [--show-errors] [--file F.jsonl] [--no-watch]
                                  [--whole] [--lead S]

What a live call gets: the engine is built by `ivr.speech.service` from the app's default settings
(the domain model with `grammars/en/lm_extra.txt`, the watch, the decoder pool), fed 20 ms frames
as `/voice/stream` feeds it, and the turn ends where the app's endpointer (`ivr.speech.endpointing`)
ends it, early or on trailing silence, so a pause mid-sentence costs what it costs on a call.
`--whole` decodes every file to its end instead; `--lead S` adds S seconds of quiet line noise
before the caller speaks, while the prompt plays over the stream (barge-in capture).

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
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from ivr.config import from_environment  # noqa: E402
from ivr.routing.classify import Classifier  # noqa: E402
from ivr.routing.rules import load_rules  # noqa: E402
from ivr.speech.audio import read_wav  # noqa: E402
from ivr.speech.emergency import emergency_in_alternatives  # noqa: E402
from ivr.speech.endpointing import EndpointConfig, Endpointer, frame_rms  # noqa: E402
from ivr.speech.engines.base import Result  # noqa: E402
from ivr.speech.service import SpeechService  # noqa: E402
from speechgen import synthesize_phone_audio  # noqa: E402

DEV = ROOT / "tests" / "data" / "dev_utterances_en.jsonl"
FRAME = 320   # bytes: 20 ms of 8 kHz PCM16, one Media Streams frame


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


def routes_confidently(classifier: Classifier, rules) -> Callable[[str], str | None]:
    """text → where it routes confidently, or None: what `/voice/stream`'s endpointer is told
    (`ivr.web.media.routes.confident_check`, which needs an app)."""
    def destination(text: str) -> str | None:
        result = classifier.classify(text, "en")
        if result.emergency:
            return "emergency"
        top = result.top
        return (top.department or top.intent or "?") if top and top.confidence >= rules.thresholds.route else None
    return destination


def live_turn(engine, pcm: bytes, destination: Callable[[str], str | None] | None,
              prompt_ms: int = 0) -> tuple[Result, int, str]:
    """(result, bytes of audio fed, why the turn ended) for one caller turn on a media stream.

    As `ivr.web.media.session.StreamTurn`: each 20 ms frame goes to the recogniser and the
    endpointer, every new partial to the endpointer with where it routes, and the turn ends at the
    endpointer's "end" ("cut:<reason>" when voiced audio was still to come). The prompt plays over the
    stream for its first `prompt_ms` (the no-input clock starts when it ends). Decoding keeps pace
    with the audio (RTF ≈ 0.1), as the decode pool does on a live call that is not overloaded.
    `destination` None: feed the whole file, no endpointing.
    """
    config = EndpointConfig()
    endpointer = Endpointer(config)
    recognizer = engine.recognizer(8000)
    text, fed, reason = "", 0, "whole"
    for start in range(0, len(pcm), FRAME):
        frame = pcm[start:start + FRAME]
        partial = recognizer.accept(frame)
        fed += len(frame)
        if destination is None:
            continue
        text = partial.text if partial else text
        if endpointer.now_ms >= prompt_ms:
            endpointer.prompt_finished()     # the prompt's mark came back
        signal = endpointer.audio(frame)
        if not (signal and signal.kind == "end"):
            endpointer.partial(text, endpointer.now_ms, destination(text) if text else None)
            signal = endpointer.check()
        if signal and signal.kind == "end":
            rest = pcm[start + FRAME:]
            # "cut:<rule>" names the rule that cut the caller off, so the two rules can be tuned apart.
            reason = f"cut:{signal.reason}" if any(frame_rms(rest[i:i + FRAME]) >= config.speech_rms
                                                   for i in range(0, len(rest), FRAME)) else signal.reason
            break
    return recognizer.finish(), fed, reason


def line_noise(seconds: float) -> bytes:
    """Quiet, repeatable phone-line hiss (PCM16 at 8 kHz), as heard before a caller speaks."""
    samples = np.random.default_rng(311).normal(0.0, 30.0, int(seconds * 8000))
    return samples.astype("<i2").tobytes()


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
    parser.add_argument("--whole", action="store_true",
                        help="decode each file to its end instead of ending the turn as the app's endpointer does")
    parser.add_argument("--lead", type=float, default=0.0,
                        help="seconds of quiet line noise (the prompt playing) before the caller speaks")
    args = parser.parse_args()
    if args.lead < 0:
        parser.error("--lead must not be negative")

    rules = load_rules(ROOT / "routing_rules.yaml")
    classifier = Classifier(rules)
    config = {**from_environment(), "IVR_SPEECH_ENGINE": args.engine}
    if args.no_watch:
        config["IVR_EMERGENCY_WATCH"] = "0"
    service = SpeechService(config, lambda: rules, ROOT / "instance" / "speech-cache")
    started = time.perf_counter()
    engine = service.engine_for("en")
    load_seconds = time.perf_counter() - started
    destination = routes_confidently(classifier, rules)
    items = [json.loads(line) for line in args.file.read_text().splitlines() if line.strip()]
    items = items[: args.limit] if args.limit else items

    stats = {"n": 0, "ok": 0, "text_ok": 0, "unconfirmed": 0, "emerg": 0, "emerg_hit": 0, "false_emerg": 0, "watch_hits": 0,
             "errors": 0, "words": 0, "audio": 0.0, "decode": 0.0, "cut": 0, "cut:early": 0, "cut:silence": 0}
    for item in items:
        audio = read_wav(synthesize_phone_audio(item["text"]))
        pcm = line_noise(args.lead) + audio.pcm16
        began = time.perf_counter()
        result, fed, reason = live_turn(engine, pcm, None if args.whole else destination, int(args.lead * 1000))
        stats["decode"] += time.perf_counter() - began
        stats["audio"] += fed / 16000
        stats["cut"] += reason.startswith("cut")
        if reason in ("cut:early", "cut:silence"):
            stats[reason] += 1
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
            typed = " — the typed text is one too" if classifier.classify(item["text"], "en").emergency else ""
            print(f"  FALSE EMERGENCY {item['text']!r} → heard {result.text!r} ({watch or 'transcript'}){typed}")
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
    if not args.whole:
        print(f"turn ended mid-speech  {stats['cut']} of {n} (the endpointer ended it while words were left: "
              f"{stats['cut:early']} early rule, {stats['cut:silence']} silence rule)")
    print(f"real-time factor       {stats['decode'] / stats['audio']:.3f}  (decode seconds per audio second, 1 thread)")


if __name__ == "__main__":
    main()
