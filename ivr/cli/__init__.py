"""The `ivr` command: a stable interface other tools call.

Each command module adds its commands in `register(cli)`; this module lists them, so a missing
or broken module is an import error, not a command that silently disappears.
"""
from __future__ import annotations

import click

from ivr.cli import (api, call, calls, check, db, holidays, models, open311, outbox, prompts, route, serve,
                     service_requests, users, voices, worker)
from ivr.cli import alerts


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """City-line IVR call router."""


for _module in (check, holidays, route, serve, call, calls, prompts, voices, models, db, worker, outbox, api, users,
                service_requests, alerts, open311):
    _module.register(cli)


def main() -> None:
    """Console-script entry point."""
    from ivr.store.driver import MissingDriver

    try:
        cli()
    except MissingDriver as exc:   # a set-up problem: one line that says what to install
        click.echo(f"Error: {exc}", err=True)
        raise SystemExit(1) from None
