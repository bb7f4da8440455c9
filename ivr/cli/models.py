"""`ivr models` — which recogniser each language gets here, and downloading Vosk models."""
from __future__ import annotations

from pathlib import Path

import click


def register(cli: click.Group) -> None:
    @cli.group()
    def models() -> None:
        """Speech recognition models (Vosk) and the engine each language uses."""

    @models.command("status")
    @click.option("--language", "languages", multiple=True, help="Language code (default: the rules' languages).")
    def status(languages: tuple[str, ...]) -> None:
        """Show the engine and capture mode each language would use on this machine."""
        from ivr.config import from_environment
        from ivr.routing.rules import load_rules
        from ivr.speech.engines.base import EngineUnavailable
        from ivr.speech.engines.vosk import find_model
        from ivr.speech.service import SpeechService

        config = from_environment()
        if not languages:
            languages = load_rules(config["IVR_RULES_PATH"]).languages
        service = SpeechService(config, lambda: None, Path("."))
        for language in languages:
            try:
                model = find_model(language, config)
                line = f"{language}: {service.choose(language)} (capture {service.capture_mode(language)})"
                click.echo(line + (f", Vosk model {model}" if model else ", no Vosk model"))
            except EngineUnavailable as exc:
                click.echo(f"{language}: not usable — {exc}", err=True)

    @models.command("download")
    @click.argument("language")
    @click.option("--models-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                  help="Where models live (default: IVR_MODELS_DIR, ./models).")
    def download(language: str, models_dir: Path | None) -> None:
        """Download the small Vosk model for LANGUAGE (en-us, es, …) through vosk's model list."""
        from ivr.config import from_environment
        from ivr.speech.engines.base import EngineUnavailable
        from ivr.speech.engines.vosk import download_model

        target_dir = models_dir or Path(from_environment()["IVR_MODELS_DIR"])
        try:
            path = download_model(language, target_dir)
        except EngineUnavailable as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"Vosk model for {language} is in {path}; `ivr models status` shows which engine each language uses.")
