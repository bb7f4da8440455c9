"""`ivr worker` — run background jobs: retention every hour (and whatever ivr.jobs declares).

Production runs it as its own service beside gunicorn (one or more; they share the queue:
the SQLite file in the instance folder on one machine, Redis with IVR_REDIS_URL across
machines). `ivr serve` starts one for local use.
"""
from __future__ import annotations

import logging

import click

from ivr import create_app

# A command imports the store, the app and the job queue when it runs, not here: see ivr/cli/__init__.py.


def register(cli: click.Group) -> None:
    @cli.command()
    @click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 32),
                  help="Tasks run at once (threads).")
    @click.option("--no-periodic", is_flag=True, help="Do not run scheduled tasks (retention) here.")
    def worker(workers: int, no_periodic: bool) -> None:
        """Run the job consumer with its scheduled tasks until stopped (Ctrl-C / SIGTERM)."""
        from ivr import jobs

        # Workers run jobs, not calls: no recogniser or voice is loaded ahead for them.
        app = create_app({"IVR_WARM": False})
        if app.config.get("IVR_JOBS_IMMEDIATE"):
            raise click.ClickException("IVR_JOBS_IMMEDIATE is set: jobs run inline, there is nothing to consume")
        logging.getLogger("huey").setLevel(logging.INFO)
        click.echo(f"ivr worker: queue {jobs.storage_description(app.config, app.instance_path)}, "
                   f"{workers} thread(s), scheduled tasks {'off' if no_periodic else 'on'}")
        # flush_locks: a worker killed mid-task must not leave retention locked for ever.
        # max_delay: an idle consumer polls at least every second (huey's default backs off to
        # 10 s), so a text queued after a quiet spell leaves within a second of its commit.
        consumer = jobs.huey.create_consumer(workers=workers, worker_type="thread",
                                             periodic=not no_periodic, flush_locks=True, max_delay=1.0)
        consumer.run()
