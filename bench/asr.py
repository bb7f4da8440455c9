"""Routing accuracy on telephone audio, per engine and per line condition.

utterances → speech (piper "joe" for English, espeak-ng for Spanish) → 8 kHz → a line condition →
the recogniser → the classifier. Per condition it prints route accuracy, emergency recall, false
emergencies, wrong departments the line would route without confirming, word error rate and
real-time factor (wall and CPU), and checks them against issue 9's targets. Also the resident
memory the engine adds to this process (loaded, and after decoding: decode buffers included).

    .venv/bin/python bench/asr.py [--engine whisper|pocketsphinx|vosk] [--model tiny.en|base|PATH]
                                  [--set unseen_en] [--conditions clean,pitch,tempo,noise,quiet,ulaw]
                                  [--limit N] [--show-errors] [--live] [--lead S]
    .venv/bin/python bench/asr.py --memory       # resident memory per engine, a fresh process each

Conditions (each utterance gets its own seeded draw, the same on every run and for every engine):
  clean   8 kHz linear PCM, no codec
  ulaw    G.711 μ-law, as every phone call arrives
  pitch   ±2–3 semitones (sox pitch), then μ-law
  tempo   0.85–1.2 × speed (sox tempo), then μ-law
  noise   telephone-band noise at 12–24 dB SNR, then μ-law
  quiet   −6 to −12 dB, then μ-law

Sets (--set): `dev` (tests/data/dev_utterances_en.jsonl, the classifier's dev set), `unseen_en`/`_es`,
`unseen2_en`/`_es` and `unseen3_en`/`_es` (bench/data/unseen*.jsonl: each written for this benchmark
before it was first measured; bench/data/LOG.md says when each was first measured, what it gave, and
when it became a development set because something was tuned on it), `heldout` and `probe`
(bench/data), `es` (tests/data/utterances_es.jsonl), or a path to any JSON Lines file with
text + department|action.

How a turn is decoded: by default the whole utterance is fed in 20 ms frames and the recogniser's
final result is routed, which is what a Whisper turn is (one decode per utterance at the end of
speech). `--live` ends each turn where the app's endpointer would (engines with partial results),
and `--lead S` adds S seconds of quiet line before the caller speaks.

Synthesised speech is cached in .cache/speech/ (gitignored); the first run of a set synthesises it.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from ivr.config import from_environment  # noqa: E402
from ivr.routing.classify import Classifier  # noqa: E402
from ivr.routing.load import load_rules  # noqa: E402
from ivr.speech.audio import parse_wav, pcm16_to_ulaw, read_wav, ulaw_to_pcm16, wav_bytes, Audio  # noqa: E402
from ivr.speech.emergency import emergency_in_alternatives  # noqa: E402
from ivr.speech.endpointing import EndpointConfig, Endpointer, frame_rms  # noqa: E402
from ivr.speech.engines.base import Result  # noqa: E402
from ivr.speech.service import SpeechService  # noqa: E402
from speechgen import synthesize_espeak_phone_audio, synthesize_phone_audio  # noqa: E402

SETS = {
    "dev": ROOT / "tests" / "data" / "dev_utterances_en.jsonl",
    "unseen_en": ROOT / "bench" / "data" / "unseen_en.jsonl",
    "unseen_es": ROOT / "bench" / "data" / "unseen_es.jsonl",
    "unseen2_en": ROOT / "bench" / "data" / "unseen2_en.jsonl",
    "unseen2_es": ROOT / "bench" / "data" / "unseen2_es.jsonl",
    "unseen3_en": ROOT / "bench" / "data" / "unseen3_en.jsonl",
    "unseen3_es": ROOT / "bench" / "data" / "unseen3_es.jsonl",
    "heldout": ROOT / "bench" / "data" / "heldout_en.jsonl",
    "probe": ROOT / "bench" / "data" / "emergency_probe_en.jsonl",
    "es": ROOT / "tests" / "data" / "utterances_es.jsonl",
}
CONDITIONS = ("clean", "ulaw", "pitch", "tempo", "noise", "quiet")
FRAME = 320   # bytes: 20 ms of 8 kHz PCM16, one Media Streams frame
RATE = 8000

#: Issue 9's targets for unseen speech.
TARGET_CLEAN, TARGET_DEGRADED = 0.95, 0.90
TARGET_FALSE_EMERGENCY, TARGET_UNCONFIRMED = 0.01, 0.02


# -- scoring --------------------------------------------------------------------------------------
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


def outcome(classification, rules, expected: dict, watch: str | None = None,
            asr_confidence: float | None = None) -> tuple[bool, bool]:
    """(correct, wrong and sure enough to route without confirming).

    `watch` is the emergency watch's verdict (`ivr.speech.emergency`), which overrides routing.
    Without confirmation means what `ivr.routing.decide` does: classifier confidence ≥ route and
    the recogniser's confidence not below confirm.
    """
    emergency = classification.emergency or bool(watch)
    if expected.get("action") == "emergency":
        return emergency, False
    top = classification.top
    department = None if emergency or top is None else top.department
    correct = department == expected["department"]
    asr_doubtful = asr_confidence is not None and asr_confidence < rules.thresholds.confirm
    unconfirmed = (not correct and department is not None and not asr_doubtful
                   and classification.confidence >= rules.thresholds.route)
    return correct, unconfirmed


def routes_confidently(classifier: Classifier, rules, language: str) -> Callable[[str], str | None]:
    """text → where it routes confidently, or None: what `/voice/stream`'s endpointer is told."""
    def destination(text: str) -> str | None:
        result = classifier.classify(text, language)
        if result.emergency:
            return "emergency"
        top = result.top
        return (top.department or top.intent or "?") if top and top.confidence >= rules.thresholds.route else None
    return destination


# -- line conditions ------------------------------------------------------------------------------
def _draw(text: str, condition: str) -> np.random.Generator:
    """The same random draw for an utterance and condition on every run and every engine."""
    seed = int.from_bytes(hashlib.sha256(f"{condition}|{text}".encode()).digest()[:8], "little")
    return np.random.default_rng(seed)


def _sox(pcm: bytes, *effect: str) -> bytes:
    wav = wav_bytes(Audio(pcm, RATE))
    out = subprocess.run(["sox", "-t", "wav", "-", "-t", "wav", "-", *effect], input=wav,
                         check=True, capture_output=True).stdout
    audio = parse_wav(out, "sox output")
    return audio.pcm16


def _ulaw(pcm: bytes) -> bytes:
    return ulaw_to_pcm16(pcm16_to_ulaw(pcm))


def _samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64)


def _pcm(samples: np.ndarray) -> bytes:
    return np.clip(np.round(samples), -32768, 32767).astype("<i2").tobytes()


def phone_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unit-RMS noise limited to the telephone band (300–3400 Hz)."""
    noise = rng.normal(0, 1, n)
    spectrum = np.fft.rfft(noise)
    freqs = np.fft.rfftfreq(n, 1 / RATE)
    spectrum[(freqs < 300) | (freqs > 3400)] = 0
    band = np.fft.irfft(spectrum, n)
    return band / max(np.sqrt(np.mean(band ** 2)), 1e-9)


def degrade(clean: bytes, condition: str, text: str) -> tuple[bytes, str]:
    """(8 kHz PCM16 as the recogniser receives it, what was done) for one condition."""
    rng = _draw(text, condition)
    if condition == "clean":
        return clean, ""
    if condition == "ulaw":
        return _ulaw(clean), ""
    if condition == "pitch":
        cents = int(rng.uniform(200, 300)) * (1 if rng.random() < 0.5 else -1)
        return _ulaw(_sox(clean, "pitch", str(cents))), f"{cents:+d} cents"
    if condition == "tempo":
        factor = round(float(rng.uniform(0.85, 1.2)), 3)
        return _ulaw(_sox(clean, "tempo", "-s", str(factor))), f"× {factor}"
    if condition == "noise":
        snr = float(rng.uniform(12, 24))
        speech = _samples(clean)
        voiced = speech[np.abs(speech) > 0]
        level = np.sqrt(np.mean(np.square(speech[np.abs(speech) > 0.1 * np.abs(voiced).max()]))) if voiced.size else 0
        noisy = speech + phone_noise(rng, speech.size) * level / (10 ** (snr / 20))
        return _ulaw(_pcm(noisy)), f"{snr:.1f} dB SNR"
    if condition == "quiet":
        gain = float(rng.uniform(-12, -6))
        return _ulaw(_pcm(_samples(clean) * 10 ** (gain / 20))), f"{gain:.1f} dB"
    raise ValueError(f"unknown condition {condition!r}; known: {', '.join(CONDITIONS)}")


def clean_audio(text: str, language: str) -> bytes:
    """The utterance as linear 8 kHz PCM16 (cached synthesis)."""
    if language == "en":
        return read_wav(synthesize_phone_audio(text, ulaw=False)).pcm16
    return read_wav(synthesize_espeak_phone_audio(text, language, ulaw=False)).pcm16


# -- decoding -------------------------------------------------------------------------------------
def whole_turn(engine, pcm: bytes) -> tuple[Result, int, str]:
    """Feed the whole utterance in 20 ms frames, then take the final result."""
    recognizer = engine.recognizer(RATE)
    for start in range(0, len(pcm), FRAME):
        recognizer.accept(pcm[start:start + FRAME])
    return recognizer.finish(), len(pcm), "whole"


def live_turn(engine, pcm: bytes, destination: Callable[[str], str | None],
              prompt_ms: int = 0) -> tuple[Result, int, str]:
    """(result, bytes of audio fed, why the turn ended) for one caller turn on a media stream, as
    `ivr.web.media.session.StreamTurn` runs it: each 20 ms frame to the recogniser and the endpointer,
    each new partial to the endpointer with where it routes; the turn ends at the endpointer's "end"
    ("cut:<reason>" when voiced audio was still to come)."""
    config = EndpointConfig()
    endpointer = Endpointer(config)
    recognizer = engine.recognizer(RATE)
    text, fed, reason = "", 0, "whole"
    for start in range(0, len(pcm), FRAME):
        frame = pcm[start:start + FRAME]
        partial = recognizer.accept(frame)
        fed += len(frame)
        text = partial.text if partial else text
        if endpointer.now_ms >= prompt_ms:
            endpointer.prompt_finished()     # the prompt's mark came back
        signal = endpointer.audio(frame)
        if not (signal and signal.kind == "end"):
            endpointer.partial(text, endpointer.now_ms, destination(text) if text else None)
            signal = endpointer.check()
        if signal and signal.kind == "end":
            rest = pcm[start + FRAME:]
            reason = f"cut:{signal.reason}" if any(frame_rms(rest[i:i + FRAME]) >= config.speech_rms
                                                   for i in range(0, len(rest), FRAME)) else signal.reason
            break
    return recognizer.finish(), fed, reason


def line_noise(seconds: float) -> bytes:
    """Quiet, repeatable phone-line hiss (PCM16 at 8 kHz), as heard before a caller speaks."""
    samples = np.random.default_rng(311).normal(0.0, 30.0, int(seconds * RATE))
    return samples.astype("<i2").tobytes()


def rss_mb() -> tuple[float, float]:
    """(resident memory now, peak) of this process in MB, from /proc."""
    now = peak = 0.0
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                now = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    except OSError:
        pass
    return now, peak


# -- the run --------------------------------------------------------------------------------------
@dataclass
class Tally:
    n: int = 0
    ok: int = 0
    unconfirmed: int = 0
    emerg: int = 0
    emerg_hit: int = 0
    false_emerg: int = 0
    errors: int = 0
    words: int = 0
    audio_s: float = 0.0
    decode_s: float = 0.0
    cpu_s: float = 0.0
    cut: int = 0
    empty: int = 0
    misses: list[str] = field(default_factory=list)

    def row(self, name: str) -> str:
        ordinary = self.n - self.emerg
        return (f"| {name:7s} | {self.ok / self.n:6.1%} ({self.ok}/{self.n}) | {self.emerg_hit}/{self.emerg} | "
                f"{self.false_emerg}/{ordinary} ({self.false_emerg / max(ordinary, 1):.1%}) | "
                f"{self.unconfirmed / self.n:5.1%} | {self.errors / max(self.words, 1):5.1%} | "
                f"{self.decode_s / max(self.audio_s, 1e-9):.3f} | {self.cpu_s / max(self.audio_s, 1e-9):.3f} | "
                f"{self.decode_s / self.n:.2f} s | {self.empty} |")

    def verdict(self, name: str) -> str:
        ordinary = self.n - self.emerg
        target = TARGET_CLEAN if name in ("clean", "ulaw") else TARGET_DEGRADED
        checks = [
            (self.ok / self.n >= target, f"routed right ≥ {target:.0%}"),
            (self.emerg_hit == self.emerg, "every emergency"),
            (self.false_emerg / max(ordinary, 1) <= TARGET_FALSE_EMERGENCY, "false emergencies ≤ 1 %"),
            (self.unconfirmed / self.n <= TARGET_UNCONFIRMED, "unconfirmed wrong ≤ 2 %"),
        ]
        return f"{name}: " + ", ".join(f"{'met' if ok else 'MISSED'} {what}" for ok, what in checks)


_MEMORY_CHILD = """
import sys, json
sys.path[:0] = [{root!r}, {tests!r}]
from bench.asr import rss_mb, whole_turn, clean_audio
from ivr.config import from_environment
from ivr.routing.load import load_rules
from ivr.speech.service import SpeechService
rules = load_rules({rules!r})
config = {{**from_environment(), **{config!r}}}
pcm = clean_audio("I want to report a pothole on Main Street", "en")
start = rss_mb()[0]
engines = [SpeechService(config, lambda: rules, {cache!r}).engine_for(lang) for lang in {languages!r}]
loaded = rss_mb()[0]
for engine in engines:
    for _ in range(3):
        whole_turn(engine, pcm)
print(json.dumps([start, loaded, *rss_mb()]))
"""

#: (label, config, languages loaded in the one process) for `--memory`.
MEMORY_CASES = (
    ("pocketsphinx (en, emergency watch)", {"IVR_SPEECH_ENGINE": "pocketsphinx"}, ("en",)),
    ("whisper tiny.en (en)", {"IVR_SPEECH_ENGINE": "whisper"}, ("en",)),
    ("whisper base (es)", {"IVR_SPEECH_ENGINE": "whisper"}, ("es",)),
    ("whisper tiny.en (en) + base (es): the default", {"IVR_SPEECH_ENGINE": "whisper"}, ("en", "es")),
    ("whisper base for en and es (one model)", {"IVR_SPEECH_ENGINE": "whisper", "IVR_WHISPER_MODEL_EN": "base"},
     ("en", "es")),
)


def memory_report() -> None:
    """Resident memory per engine, each in a fresh process: loaded, then after three decodes."""
    print("| engine (one process) | RSS before | model(s) loaded | after 3 decodes each | peak |")
    print("|---|---|---|---|---|")
    for label, config, languages in MEMORY_CASES:
        code = _MEMORY_CHILD.format(root=str(ROOT), tests=str(ROOT / "tests"), rules=str(ROOT / "routing_rules.yaml"),
                                    config=config, cache=str(ROOT / "instance" / "speech-cache"),
                                    languages=languages)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        start, loaded, end, peak = json.loads(out.strip().splitlines()[-1])
        print(f"| {label} | {start:.0f} MB | +{loaded - start:.0f} MB | +{end - start:.0f} MB | {peak:.0f} MB |")


def load_items(spec: str, limit: int) -> tuple[str, list[dict]]:
    path = SETS.get(spec) or Path(spec)
    if not path.exists():
        raise SystemExit(f"no such set {spec!r}: use one of {', '.join(SETS)} or a .jsonl path")
    items = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return path.name, items[:limit] if limit else items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", default="whisper", choices=("whisper", "pocketsphinx", "vosk"))
    parser.add_argument("--model", default="", help="Whisper model for the set's language: tiny.en, base, a path")
    parser.add_argument("--set", default="unseen_en", help=f"one of {', '.join(SETS)}, or a .jsonl path")
    parser.add_argument("--language", default="", help="default: es for sets named *es*, else en")
    parser.add_argument("--conditions", default=",".join(CONDITIONS))
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--show-errors", action="store_true")
    parser.add_argument("--live", action="store_true",
                        help="end each turn where the app's endpointer would (engines with partials)")
    parser.add_argument("--lead", type=float, default=0.0,
                        help="seconds of quiet line noise (the prompt playing) before the caller speaks")
    parser.add_argument("--no-watch", action="store_true", help="pocketsphinx without its emergency watch")
    parser.add_argument("--no-prompt", action="store_true", help="Whisper without the rules' prompt")
    parser.add_argument("--memory", action="store_true",
                        help="only the resident memory per engine, each loaded in a fresh process")
    args = parser.parse_args()
    if args.memory:
        memory_report()
        return
    conditions = [c.strip() for c in args.conditions.split(",") if c.strip()]
    unknown = set(conditions) - set(CONDITIONS)
    if unknown or args.lead < 0:
        parser.error(f"unknown conditions {sorted(unknown)}" if unknown else "--lead must not be negative")
    if any(c in ("pitch", "tempo") for c in conditions) and shutil.which("sox") is None:
        parser.error("the pitch and tempo conditions need sox: apt-get install sox")

    set_name, items = load_items(args.set, args.limit)
    language = args.language or ("es" if "es" in Path(set_name).stem.split("_") else "en")
    rules = load_rules(ROOT / "routing_rules.yaml")
    classifier = Classifier(rules)
    config = {**from_environment(), f"IVR_SPEECH_ENGINE_{language.upper()}": args.engine}
    if args.model:
        config[f"IVR_WHISPER_MODEL_{language.upper()}"] = args.model
    if args.no_watch:
        config["IVR_EMERGENCY_WATCH"] = "0"
    service = SpeechService(config, lambda: rules, ROOT / "instance" / "speech-cache")
    # Synthesis (piper loads a model too) before the engine, so the memory figures are the engine's.
    clean = {item["text"]: clean_audio(item["text"], language) for item in items}
    rss_before, _ = rss_mb()
    started = time.perf_counter()
    engine = service.engine_for(language)
    if args.no_prompt and hasattr(engine, "prompt"):
        engine.prompt = ""
    load_s = time.perf_counter() - started
    rss_loaded, _ = rss_mb()
    destination = routes_confidently(classifier, rules, language)
    typed_ok = sum(outcome(classifier.classify(item["text"], language), rules, item)[0] for item in items)

    tallies: dict[str, Tally] = {}
    for condition in conditions:
        tally = tallies[condition] = Tally()
        for item in items:
            pcm, how = degrade(clean[item["text"]], condition, item["text"])
            pcm = line_noise(args.lead) + pcm
            began, cpu = time.perf_counter(), time.process_time()
            if args.live:
                result, fed, reason = live_turn(engine, pcm, destination, int(args.lead * 1000))
            else:
                result, fed, reason = whole_turn(engine, pcm)
            tally.decode_s += time.perf_counter() - began
            tally.cpu_s += time.process_time() - cpu
            tally.audio_s += fed / (2 * RATE)
            tally.cut += reason.startswith("cut")
            tally.empty += not result.text.strip()
            errors, words = word_errors(item["text"], result.text)
            tally.errors += errors
            tally.words += words
            classification = classifier.classify(result.text, language)
            watch = None if classification.emergency else emergency_in_alternatives(classifier, result, language)
            correct, unconfirmed = outcome(classification, rules, item, watch,
                                           result.confidence if result.text else None)
            tally.n += 1
            tally.ok += correct
            tally.unconfirmed += unconfirmed
            label = item.get("department") or item.get("action")
            if item.get("action") == "emergency":
                tally.emerg += 1
                tally.emerg_hit += correct
            elif classification.emergency or watch:
                tally.false_emerg += 1
                tally.misses.append(f"FALSE EMERGENCY [{label}] {item['text']!r} → {result.text!r} {how}")
            if not correct and args.show_errors and not (classification.emergency or watch):
                got = classification.top.department if classification.top else None
                tally.misses.append(f"MISS [{label}→{got}{' UNCONFIRMED' if unconfirmed else ''}] "
                                    f"{item['text']!r} → {result.text!r} ({result.confidence:.2f}) {how}")
        print(f"  … {condition} done ({tally.ok}/{tally.n})", file=sys.stderr, flush=True)

    rss_end, rss_peak = rss_mb()
    description = getattr(engine, "description", engine.name)
    print(f"## {set_name} ({language}), engine {description}, {'live endpointing' if args.live else 'whole utterances'}"
          f"{', no prompt' if args.no_prompt else ''}")
    print(f"{len(items)} utterances ({tallies[conditions[0]].emerg} emergencies); typed text routes "
          f"{typed_ok / len(items):.1%} right; engine loaded in {load_s:.1f} s; "
          f"engine memory (RSS growth of this process) {rss_loaded - rss_before:.0f} MB loaded, "
          f"{rss_end - rss_before:.0f} MB after decoding (process RSS {rss_end:.0f} MB, peak {rss_peak:.0f} MB "
          f"with the synthesiser); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("RTF: decode wall seconds per audio second (shared machine: see the load); CPU RTF: CPU seconds "
          "of this process per audio second, all threads")
    print()
    print("| line | routed right | emergencies | false emergencies | wrong, unconfirmed | WER | RTF | CPU RTF "
          "| per utterance | no words |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for condition in conditions:
        print(tallies[condition].row(condition))
    print()
    for condition in conditions:
        print("- " + tallies[condition].verdict(condition))
    for condition in conditions:
        for miss in tallies[condition].misses:
            print(f"  {condition}: {miss}")


if __name__ == "__main__":
    main()
