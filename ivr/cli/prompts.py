"""`ivr prompts build` renders every prompt knowable ahead; `ivr prompts say` previews any sentence.

Both read the same settings as the server (IVR_PROMPTS_DIR, IVR_PROMPT_CACHE_DIR,
IVR_TTS_ENGINE_<LANG>, the voice settings, IVR_RULES_PATH) without starting it, and render
through the same speaker and cache as the line, so what they write is what callers hear.
"""
from __future__ import annotations

import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import click
from flask import Flask

from ivr.config import from_environment
from ivr.prompts.cache import PromptAudio, audio_store
from ivr.prompts.catalogue import load_catalogue, load_lexicons, validate
from ivr.prompts.fixed import fixed_texts
from ivr.routing.hours import hours_by_code
from ivr.routing.load import load_rules
from ivr.voices import TTSError

#: Players tried in order by `ivr prompts say` without -o (the first one installed plays).
PLAYERS = (["aplay", "-q"], ["paplay"], ["afplay"], ["play", "-q"], ["ffplay", "-nodisp", "-autoexit", "-loglevel", "quiet"])


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


def _store(config: dict[str, Any]) -> tuple[PromptAudio, dict[str, Any]]:
    """The line's audio cache and speakers, and the catalogue; ClickException when it is broken."""
    catalogue, problems = load_catalogue(config["IVR_PROMPTS_DIR"])
    problems += validate(catalogue, config["IVR_PROMPTS_DIR"])
    for problem in problems:
        click.echo(str(problem), err=True)
    if problems:
        raise click.ClickException(f"{len(problems)} problem(s) in the prompt catalogue; nothing rendered")
    lexicons = load_lexicons(config["IVR_PROMPTS_DIR"], catalogue)
    return audio_store(config, sorted(catalogue), lexicons.__getitem__), catalogue


def register(cli: click.Group) -> None:
    """Add the `prompts` command group to `cli`."""

    @cli.group()
    def prompts() -> None:
        """Prompt catalogue and rendered prompt audio."""

    @prompts.command()
    @click.option("--lang", "languages", multiple=True, help="Only this language (repeatable). Default: all.")
    @click.option("--jobs", default=2, show_default=True, type=click.IntRange(1, 8), help="Renders at once.")
    def build(languages: tuple[str, ...], jobs: int) -> None:
        """Render every fixed prompt into the cache with each language's voice; unchanged ones are skipped."""
        config = _config()
        store, catalogue = _store(config)
        unknown = sorted(set(languages) - set(catalogue))
        if unknown:
            raise click.BadParameter(f"no catalogue for {', '.join(unknown)}; have {', '.join(sorted(catalogue))}",
                                     param_hint="--lang")
        if store.unavailable:
            raise click.ClickException(f"cannot render prompts: {store.unavailable}")
        rules, why = _rules(config["IVR_RULES_PATH"])
        if rules is None:
            click.echo(f"warning: rules not loaded ({why}); building only prompts without placeholders", err=True)
        texts = [item for lang in (languages or sorted(catalogue))
                 for item in fixed_texts(catalogue[lang], lang, rules, rules and hours_by_code(rules))]
        for language in sorted({item.voice for item in texts}):
            speaker = store.speaker(language)
            skipped = f" (not {'; '.join(speaker.skipped)})" if speaker.skipped else ""
            click.echo(f"{language}: {speaker.engine.id if speaker.engine else 'Twilio <Say> ' + speaker.say_voice}"
                       f"{skipped}")
        # Languages that only <Say> have nothing to render.
        texts = [item for item in texts if store.speaker(item.voice).engine is not None]
        # The same words in the same voice (the Spanish invitation in both catalogues) render once.
        unique = {store.name(item.text, item.voice): item for item in texts}
        todo = [item for name, item in unique.items() if not store.path(name).is_file()]
        click.echo(f"{len(unique)} fixed prompts; {len(unique) - len(todo)} already rendered, {len(todo)} to render "
                   f"into {store.cache_dir}")
        started, failures = time.perf_counter(), []
        for language in sorted({item.voice for item in todo}):
            load = getattr(store.speaker(language).engine, "load", None)
            if load is not None:
                load()      # once, before the pool: every render then shares the loaded voice
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

    @prompts.command("say")
    @click.argument("text")
    @click.option("--lang", "language", default="en", show_default=True, help="Language whose voice speaks it.")
    @click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True),
                  help="Write the WAV here. Without it the sentence is played (or written to say.wav).")
    def say(text: str, language: str, output: str | None) -> None:
        """Say TEXT exactly as the line would: same voice, pronunciations, style and 8 kHz μ-law audio."""
        config = _config()
        store, catalogue = _store(config)
        if language not in catalogue:
            raise click.BadParameter(f"no catalogue for '{language}'; have {', '.join(sorted(catalogue))}",
                                     param_hint="--lang")
        if not text.strip():
            raise click.BadParameter("there is nothing to say", param_hint="TEXT")
        speaker = store.speaker(language)
        click.echo(f"{language} voice: {speaker.engine.id if speaker.engine else 'none'}; "
                   f"words: {speaker.spoken(text)}", err=True)
        if speaker.engine is None or store.unavailable:
            raise click.ClickException(
                f"the line would use Twilio <Say voice=\"{speaker.say_voice}\" language=\"{speaker.say_language}\"> "
                f"for '{language}' ({'; '.join(speaker.skipped) or store.unavailable or 'IVR_TTS_ENGINE says so'}): "
                f"it cannot be rendered here. It would read: {speaker.say_text(text)}")
        try:
            name = store.render(text, language)   # the line's own cache: the very file callers get
        except TTSError as exc:
            raise click.ClickException(f"could not render: {exc}; the line would <Say> it") from None
        rendered = store.path(name)
        player = None if output else next((p for p in PLAYERS if shutil.which(p[0])), None)
        if player is not None:
            subprocess.run([*player, str(rendered)], check=False, timeout=120)
            click.echo(f"played {rendered}")
            return
        target = Path(output or "say.wav")
        shutil.copyfile(rendered, target)
        click.echo(f"wrote {target} (8 kHz μ-law WAV; cached as {rendered.name})")
