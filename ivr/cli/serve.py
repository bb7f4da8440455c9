"""`ivr serve` — run the line on this machine (Flask's server; use gunicorn in production).

It also starts one `ivr worker` beside it (retention and other background jobs), stopped with
it, so a local line keeps itself tidy; `--no-worker` when a worker runs elsewhere.
"""
from __future__ import annotations

import subprocess
import sys

import click

from ivr import create_app


def register(cli: click.Group) -> None:
    @cli.command()
    @click.option("--host", default="127.0.0.1", show_default=True)
    @click.option("--port", default=5000, show_default=True, type=int)
    @click.option("--worker/--no-worker", default=True, show_default=True,
                  help="Also run `ivr worker` (background jobs) while serving.")
    def serve(host: str, port: int, worker: bool) -> None:
        """Serve the webhooks and the media-stream websocket."""
        app = create_app()
        click.echo(f"Serving the city line on http://{host}:{port} (rules: {app.config['IVR_RULES_PATH']})")
        child = subprocess.Popen([sys.executable, "-m", "ivr.cli", "worker", "--workers", "1"]) if worker else None
        try:
            app.run(host=host, port=port, threaded=True)
        finally:
            if child is not None:
                child.terminate()
                try:
                    child.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    child.kill()
