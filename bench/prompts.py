"""Prompt rendering cost: `ivr prompts build` cold and warm, and on-demand render latency.

    .venv/bin/python bench/prompts.py [--renders N] [--jobs J] [--skip-build]

Prints numbers, asserts nothing. Uses a fresh temporary cache, the shipped catalogues and
routing_rules.yaml (IVR_* settings from the environment apply). On-demand renders are
`queue_position` texts with values no build could know, rendered one at a time, the way a
webhook waits for them; the budget is IVR_TTS_BUDGET_MS (default 1500 ms).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from click.testing import CliRunner  # noqa: E402  (path set up above)

from ivr.cli import cli  # noqa: E402
from ivr.config import from_environment  # noqa: E402
from ivr.prompts.cache import audio_store  # noqa: E402
from ivr.prompts.catalogue import fill, load_catalogue  # noqa: E402


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def bench_build(cache: Path, jobs: int) -> None:
    """Time the real CLI command twice: everything to render, then nothing changed."""
    os.environ["IVR_PROMPT_CACHE_DIR"] = str(cache)
    for label in ("cold", "warm"):
        started = time.perf_counter()
        result = CliRunner().invoke(cli, ["prompts", "build", "--jobs", str(jobs)])
        seconds = time.perf_counter() - started
        files = len(list(cache.glob("*.wav")))
        last = result.output.strip().splitlines()[-1] if result.output.strip() else ""
        print(f"build {label}: {seconds:6.2f} s  exit {result.exit_code}  {files} files  ({last})")


def bench_on_demand(cache: Path, renders: int) -> None:
    """p50/p99 of rendering per-call prompts that are not in the cache."""
    config = {**from_environment(), "IVR_PROMPT_CACHE_DIR": str(cache / "on-demand")}
    catalogue, _ = load_catalogue(config["IVR_PROMPTS_DIR"])
    store = audio_store(config, sorted(catalogue))
    if store.unavailable:
        print(f"on-demand: not measured — {store.unavailable}")
        return
    budget_ms = int(config["IVR_TTS_BUDGET_MS"])
    timings: list[float] = []
    for index in range(renders):
        language = ("en", "es")[index % 2]
        words = fill(catalogue[language]["queue_position"], {"position": index + 2, "minutes": 3 * index + 7})
        started = time.perf_counter()
        store.render(words, language)
        timings.append((time.perf_counter() - started) * 1000)
    within = sum(t <= budget_ms for t in timings)
    print(f"on-demand render ({renders} prompts, en+es): p50 {statistics.median(timings):.0f} ms  "
          f"p99 {_percentile(timings, 0.99):.0f} ms  max {max(timings):.0f} ms  "
          f"within {budget_ms} ms budget: {within}/{renders}")
    started = time.perf_counter()
    for _ in range(200):
        store.cached(words, "es")
    print(f"cache lookup (hash + stat): {(time.perf_counter() - started) / 200 * 1e6:.0f} µs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=int, default=30, help="on-demand renders to time")
    parser.add_argument("--jobs", type=int, default=2, help="parallel renders for the build")
    parser.add_argument("--skip-build", action="store_true", help="only measure on-demand rendering")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ivr-bench-prompts-") as tmp:
        cache = Path(tmp)
        if not args.skip_build:
            bench_build(cache / "build", args.jobs)
        bench_on_demand(cache, args.renders)


if __name__ == "__main__":
    main()
