"""`ivr prompts build [--lang LANG]…` — render every prompt knowable ahead into the audio cache.

Reads the same settings as the server (IVR_PROMPTS_DIR, IVR_PROMPT_CACHE_DIR, IVR_TTS_VOICE_<LANG>,
IVR_TTS_RATE, IVR_RULES_PATH) without starting it, so it can run before `ivr serve`.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import click
from flask import Flask

from ivr.config import from_environment
from ivr.prompts.cache import audio_store
from ivr.prompts.catalogue import load_catalogue, validate
from ivr.prompts.fixed import fixed_texts
from ivr.routing.hours import hours_text
from ivr.routing.rules import load_rules
from ivr.speech.tts import TTSError


def _config() -> dict[str, Any]:
    """The server's settings, with the cache directory defaulted the way create_app does."""
    config = from_environment()
    if not config["IVR_PROMPT_CACHE_DIR"]:
        instance = Flask("ivr", instance_relative_config=True).instance_path
        config["IVR_PROMPT_CACHE_DIR"] = str(Path(instance) / "prompt-cache")
    return config


def _rules(path: str) -> tuple[Any | None, str]:
    """(rules, "") or (None, why not) — without rules only placeholder-free prompts are built."""
    try:
        return load_rules(path), ""
    except Exception as exc:  # ConfigError, OSError …: any reason is reported, the build goes on
        return None, str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def register(cli: click.Group) -> None:
    """Add the `prompts` command group to `cli`."""

    @cli.group()
    def prompts() -> None:
        """Prompt catalogue and rendered prompt audio."""

    @prompts.command()
    @click.option("--lang", "languages", multiple=True, help="Only this language (repeatable). Default: all.")
    @click.option("--jobs", default=2, show_default=True, type=click.IntRange(1, 8), help="Renders at once.")
    def build(languages: tuple[str, ...], jobs: int) -> None:
        """Render every fixed prompt with pyttsx3 into the cache; unchanged prompts are skipped."""
        config = _config()
        catalogue, problems = load_catalogue(config["IVR_PROMPTS_DIR"])
        problems += validate(catalogue, config["IVR_PROMPTS_DIR"])
        for problem in problems:
            click.echo(str(problem), err=True)
        if problems:
            raise click.ClickException(f"{len(problems)} problem(s) in the prompt catalogue; nothing rendered")
        unknown = sorted(set(languages) - set(catalogue))
        if unknown:
            raise click.BadParameter(f"no catalogue for {', '.join(unknown)}; have {', '.join(sorted(catalogue))}",
                                     param_hint="--lang")
        store = audio_store(config, sorted(catalogue))
        if store.unavailable:
            raise click.ClickException(f"cannot render prompts: {store.unavailable}")
        rules, why = _rules(config["IVR_RULES_PATH"])
        if rules is None:
            click.echo(f"warning: rules not loaded ({why}); building only prompts without placeholders", err=True)
        texts = [item for lang in (languages or sorted(catalogue))
                 for item in fixed_texts(catalogue[lang], lang, rules, hours_text)]
        # The same words in the same voice (the Spanish invitation in both catalogues) render once.
        unique = {store.name(item.text, item.voice): item for item in texts}
        todo = [item for name, item in unique.items() if not store.path(name).is_file()]
        click.echo(f"{len(unique)} fixed prompts; {len(unique) - len(todo)} already rendered, {len(todo)} to render "
                   f"into {store.cache_dir}")
        started, failures = time.perf_counter(), []
        with ThreadPoolExecutor(max_workers=jobs) as pool, \
                click.progressbar(length=len(todo), label="Rendering") as bar:
            futures = {pool.submit(store.render, item.text, item.voice): item for item in todo}
            for future in as_completed(futures):
                try:
                    future.result()
                except (TTSError, OSError, KeyError) as exc:
                    failures.append(f"{futures[future].key} ({futures[future].voice}): {exc}")
                bar.update(1)
        for failure in failures:
            click.echo(f"failed: {failure}", err=True)
        click.echo(f"rendered {len(todo) - len(failures)}, failed {len(failures)} "
                   f"in {time.perf_counter() - started:.1f}s")
        if failures:
            raise click.ClickException("some prompts could not be rendered; the line will <Say> them")
