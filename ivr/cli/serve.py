"""`ivr serve` — run the line on this machine (Flask's server; use gunicorn in production)."""
from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    @cli.command()
    @click.option("--host", default="127.0.0.1", show_default=True)
    @click.option("--port", default=5000, show_default=True, type=int)
    def serve(host: str, port: int) -> None:
        """Serve the webhooks and the media-stream websocket."""
        from ivr import create_app

        app = create_app()
        click.echo(f"Serving the city line on http://{host}:{port} (rules: {app.config['IVR_RULES_PATH']})")
        app.run(host=host, port=port, threaded=True)
