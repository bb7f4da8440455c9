"""PENDING: placeholder so create_app imports; replaced by its owner (see docs/architecture.md)."""
from flask import Flask


def init_app(app: Flask) -> None:
    """Not implemented yet."""
