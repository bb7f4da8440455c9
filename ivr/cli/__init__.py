"""The `ivr` command: a stable interface other tools call.

Each sub-module adds its commands to `cli` in `register(cli)`; this module only assembles them.
"""
from __future__ import annotations

import importlib

import click

# Sub-modules that contribute commands; each defines register(cli: click.Group).
_COMMAND_MODULES = ("check", "route", "serve", "call", "calls", "prompts", "models", "db", "worker")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """City-line IVR call router."""


for _name in _COMMAND_MODULES:
    try:
        _module = importlib.import_module(f"ivr.cli.{_name}")
    except ModuleNotFoundError as exc:  # a command module not written yet
        if exc.name != f"ivr.cli.{_name}":
            raise
        continue
    _module.register(cli)


def main() -> None:
    """Console-script entry point."""
    from ivr.store.driver import MissingDriver

    try:
        cli()
    except MissingDriver as exc:   # a set-up problem: one line that says what to install
        click.echo(f"Error: {exc}", err=True)
        raise SystemExit(1) from None
