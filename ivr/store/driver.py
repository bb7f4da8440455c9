"""Which database driver a URL needs, and a clear error when it is not installed.

The plain install (`pip install city-ivr`) runs on SQLite, which Python ships. PostgreSQL needs a
driver from the `postgres` extra; it is imported only when a PostgreSQL URL is used, so the plain
install never needs it, and a missing one is named with the command that installs it instead of
surfacing as an ImportError from deep inside SQLAlchemy.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy.engine import make_url

POSTGRES_EXTRA = "pip install 'city-ivr[postgres]'"


class MissingDriver(RuntimeError):
    """The database URL names a driver that is not installed (a set-up problem, not a database fault)."""


def require(url: Any) -> None:
    """Raise MissingDriver when the DB-API module for `url` (a string or URL) cannot be imported."""
    parsed = make_url(url)
    try:
        parsed.get_dialect().import_dbapi()
    except ImportError as exc:
        missing = getattr(exc, "name", None) or str(exc)
        hint = POSTGRES_EXTRA if parsed.get_backend_name() == "postgresql" else \
            f"install the Python package that provides {missing!r}"
        raise MissingDriver(
            f"the database URL uses {parsed.drivername!r}, whose driver ({missing}) is not installed; "
            f"install it with: {hint}") from exc
