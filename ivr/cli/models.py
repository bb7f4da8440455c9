"""`ivr models` — which recogniser each language gets here, and downloading Vosk or Whisper models."""
from __future__ import annotations

from pathlib import Path

import click

from ivr.config import from_environment
from ivr.routing.load import load_rules
from ivr.speech.engines.base import EngineUnavailable

# The recognisers are imported when a command runs, not here: see ivr/cli/__init__.py.


def register(cli: click.Group) -> None:
    @cli.group()
    def models() -> None:
        """Speech recognition models (Vosk, Whisper) and the engine each language uses."""

    @models.command("status")
    @click.option("--language", "languages", multiple=True, help="Language code (default: the rules' languages).")
    def status(languages: tuple[str, ...]) -> None:
        """Show the engine, its model and the capture mode each language would use on this machine."""
        from ivr.speech.engines import whisper
        from ivr.speech.engines.vosk import find_model
        from ivr.speech.service import SpeechService

        config = from_environment()
        if not languages:
            languages = load_rules(config["IVR_RULES_PATH"]).languages
        service = SpeechService(config, lambda: None, Path("."))
        for language in languages:
            try:
                engine = service.choose(language)
                line = f"{language}: {engine} (capture {service.capture_mode(language)})"
                if engine == "whisper":
                    spec = whisper.find_model(language, config)
                    line += f", Whisper {spec.name} from {spec.where}: {spec.path}"
                elif engine == "vosk":
                    line += f", Vosk model {find_model(language, config)}"
                elif service.setting(language) == "auto":
                    line += f"; {_why_not_local(language, config)}"
                else:
                    line += " (set by IVR_SPEECH_ENGINE)"
                click.echo(line)
            except EngineUnavailable as exc:
                click.echo(f"{language}: not usable — {exc}", err=True)

    @models.command("download")
    @click.argument("name")
    @click.option("--models-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                  help="Where models live (default: IVR_MODELS_DIR, ./models).")
    def download(name: str, models_dir: Path | None) -> None:
        """Download a model: `whisper-base`, `whisper-small` … (faster-whisper's downloader), or the
        small Vosk model for a language (en-us, es, …) through vosk's model list."""
        target_dir = models_dir or Path(from_environment()["IVR_MODELS_DIR"])
        try:
            if name.startswith("whisper-"):
                from ivr.speech.engines.whisper import download_model as download_whisper

                path = download_whisper(name.removeprefix("whisper-"), target_dir)
                what = f"Whisper {name.removeprefix('whisper-')}"
            else:
                from ivr.speech.engines.vosk import download_model

                path = download_model(name, target_dir)
                what = f"Vosk model for {name}"
        except EngineUnavailable as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"{what} is in {path}; `ivr models status` shows which engine each language uses.")


def _why_not_local(language: str, config) -> str:
    """Why no local recogniser serves `language` (for the status line)."""
    from ivr.speech.engines import whisper

    if not whisper.whisper_installed():
        return "no Vosk model, faster-whisper not installed"
    return f"no Vosk or Whisper model ({whisper.missing_model_message(language)})"
