"""The one job queue of the app: a huey instance whose storage is chosen by configuration.

Tasks are declared at import time on the module-level `huey` (huey's decorators need an
instance), but its storage is chosen only in `configure`, called from `create_app` and by
`ivr worker`: SQLite in the instance folder for the embedded set-up, Redis when IVR_REDIS_URL
is set (several app machines then share one queue). Until then the storage is in memory.

Tasks run inside the Flask app's context (`app_task`, `app_periodic_task`), so they use the
same database engine, rules and settings as the webhooks.
"""
from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar
from urllib.parse import urlsplit

from flask import Flask, has_app_context
from huey import Huey
from huey.storage import MemoryStorage, SqliteStorage

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
QUEUE_NAME = "ivr"

#: The queue. Storage is in memory until `configure` picks SQLite or Redis.
huey = Huey(QUEUE_NAME, storage_class=MemoryStorage, utc=True)

#: The app tasks run in: set by `init_app` (the web app in immediate mode, the worker's app).
_app: dict[str, Flask] = {}


class JobsConfigError(RuntimeError):
    """The job queue cannot be set up as configured (the message says what to do)."""


def storage_description(config: Mapping[str, Any], instance_path: str | Path) -> str:
    """Where the queue lives, without secrets (for logs and `ivr worker`'s banner)."""
    redis_url = config.get("IVR_REDIS_URL") or ""
    if redis_url:
        parts = urlsplit(redis_url)
        host = parts.hostname or "localhost"
        return f"redis {parts.scheme}://{host}:{parts.port or 6379}{parts.path}"
    return f"sqlite {jobs_db_path(config, instance_path)}"


def jobs_db_path(config: Mapping[str, Any], instance_path: str | Path) -> Path:
    """IVR_JOBS_DB, else <instance>/jobs.sqlite3."""
    configured = config.get("IVR_JOBS_DB") or ""
    return Path(configured) if configured else Path(instance_path) / "jobs.sqlite3"


def configure(config: Mapping[str, Any], instance_path: str | Path) -> None:
    """Point `huey` at its storage: Redis when IVR_REDIS_URL is set, else a SQLite file.

    IVR_JOBS_IMMEDIATE=1 runs tasks inline when they are enqueued (tests, one-off scripts).
    """
    redis_url = config.get("IVR_REDIS_URL") or ""
    if redis_url:
        try:
            from huey.storage import RedisStorage
            import redis  # noqa: F401 - checked here so the error names the extra to install
        except ImportError as exc:
            raise JobsConfigError("IVR_REDIS_URL is set but the redis client is not installed: "
                                  "pip install 'city-ivr[redis]'") from exc
        storage_class: type = RedisStorage
        kwargs: dict[str, Any] = {"url": redis_url}
    else:
        path = jobs_db_path(config, instance_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        storage_class, kwargs = SqliteStorage, {"filename": str(path)}
    immediate = _truthy(config.get("IVR_JOBS_IMMEDIATE"))
    if (huey.storage_class, huey.storage_kwargs, huey.immediate) == (storage_class, kwargs, immediate):
        return   # same set-up (several apps in one process): keep the open storage
    huey.immediate = False
    huey.storage_class, huey.storage_kwargs = storage_class, kwargs
    old = huey.storage
    huey.storage = huey.create_storage()
    _close(old)
    huey.immediate = immediate


def _close(storage: Any) -> None:
    try:
        storage.close()
    except Exception:  # noqa: BLE001 - closing the storage we replace is best effort
        pass


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value or "").strip().lower() in {"1", "true", "yes", "on"}


def bind_app(app: Flask) -> None:
    """Make `app` the one tasks run in."""
    _app["app"] = app


def bound_app() -> Flask:
    """The app tasks run in: `create_app` binds it (the web app, or `ivr worker`'s own app).

    This module does not build an app itself: `ivr` imports it to build one (a cycle)."""
    app = _app.get("app")
    if app is None:
        raise RuntimeError("no app is bound to the job queue: run jobs with `ivr worker` (or create_app() "
                           "first, which binds its app)")
    return app


def _in_app(func: F) -> F:
    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        if has_app_context():     # immediate mode inside a request: already in the app
            return func(*args, **kwargs)
        with bound_app().app_context():
            return func(*args, **kwargs)
    return run  # type: ignore[return-value]


def app_task(**options: Any) -> Callable[[F], Any]:
    """`huey.task(**options)`, run inside the app's context. Calling the result enqueues it."""
    def decorate(func: F) -> Any:
        return huey.task(**options)(_in_app(func))
    return decorate


def app_periodic_task(schedule: Callable[..., bool], **options: Any) -> Callable[[F], Any]:
    """`huey.periodic_task(schedule, **options)`, run inside the app's context."""
    def decorate(func: F) -> Any:
        return huey.periodic_task(schedule, **options)(_in_app(func))
    return decorate
