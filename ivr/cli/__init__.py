"""The `ivr` command: a stable interface other tools call.

Each command module adds its commands in `register(cli)`; this module lists them, so a missing
or broken module is an import error, not a command that silently disappears.

A command module imports at its top what `ivr --help` needs anyway (click, the routing core, the
settings); what one command needs to run (the store's engine, the web app, the console's
accounts, the job queue, the recognisers) it imports inside that command. Importing all of that
up front made every `ivr` invocation about 1 s slower (`ivr --help` 0.9-1.6 s against
1.9-2.7 s with it all imported, 2026-12-07, load 2.5), for commands such as `ivr route` and
`ivr check` that never touch it. None of these imports breaks a cycle.
"""
from __future__ import annotations

import click

from ivr.cli import (api, call, calls, check, db, holidays, models, open311, outbox, prompts, route, serve,
                     service_requests, users, voices, worker)
from ivr.cli import alerts
from ivr.store.driver import MissingDriver


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """City-line IVR call router."""


for _module in (check, holidays, route, serve, call, calls, prompts, voices, models, db, worker, outbox, api, users,
                service_requests, alerts, open311):
    _module.register(cli)


def main() -> None:
    """Console-script entry point."""
    try:
        cli()
    except MissingDriver as exc:   # a set-up problem: one line that says what to install
        click.echo(f"Error: {exc}", err=True)
        raise SystemExit(1) from None
