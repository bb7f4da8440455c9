"""`ivr voices list` and `ivr voices download NAME`: which voice speaks each language, and more voices."""
from __future__ import annotations

from pathlib import Path

import click

from ivr.config import from_environment
from ivr.prompts.catalogue import load_catalogue
from ivr.voices import piper_voices_dir, speaker_for
from ivr.voices.download import Offline, download
from ivr.voices.piper_engine import installed_voices


def register(cli: click.Group) -> None:
    """Add the `voices` command group to `cli`."""

    @cli.group()
    def voices() -> None:
        """Voices that speak the prompts (Piper, pyttsx3, Twilio <Say>)."""

    @voices.command("list")
    def list_voices() -> None:
        """Installed Piper voices, and the engine each language of the line uses (with why)."""
        config = from_environment()
        directory = piper_voices_dir(config)
        click.echo(f"Piper voices (packaged, and in {directory}):")
        for name, language in installed_voices(directory) or [("none", "-")]:
            click.echo(f"  {name}  [{language}]")
        catalogue, _ = load_catalogue(config["IVR_PROMPTS_DIR"])
        click.echo("The line speaks:")
        for language in sorted(catalogue):
            chosen = speaker_for(config, language)
            engine = chosen.engine.id if chosen.engine else f"Twilio <Say> {chosen.say_voice} {chosen.say_language}"
            click.echo(f"  {language}: {engine}")
            for why in chosen.skipped:
                click.echo(f"      not {why}")

    @voices.command("download")
    @click.argument("name")
    @click.option("--dir", "directory", type=click.Path(file_okay=False),
                  help="Where to put it (default: IVR_PIPER_VOICES_DIR, else <IVR_MODELS_DIR>/piper).")
    def download_voice(name: str, directory: str | None) -> None:
        """Download Piper voice NAME (e.g. es_MX-claude-high) from piper's voice list."""
        config = from_environment()
        target = Path(directory) if directory else piper_voices_dir(config)
        if target is None:
            raise click.ClickException("no voices directory: set IVR_PIPER_VOICES_DIR or pass --dir")
        try:
            model, language = download(name, target)
        except (Offline, ValueError) as exc:
            raise click.ClickException(str(exc)) from None
        env = f"IVR_PIPER_VOICE_{language.upper()}={name} "
        click.echo(f"downloaded {model} ({language}). The line uses it for '{language}' prompts when no other "
                   f"{language} voice is set ({env}to choose it); run `ivr prompts build` to render them.")
