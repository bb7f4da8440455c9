"""Background jobs: retention and outbox delivery, run by `ivr worker` with huey.

Public surface:
- `huey`: the queue (SQLite in the instance folder, or Redis when IVR_REDIS_URL is set);
- `app_task(...)` / `app_periodic_task(schedule, ...)`: declare a task that runs inside the app;
- `init_app(app)`: called by `create_app`, points the queue at its storage and registers tasks.

Adding a task: write it in a module of this package with `@app_task()` and add the module to
`TASK_MODULES`; call the task function to enqueue it (from a webhook, after the commit).
"""
from __future__ import annotations

import importlib

from flask import Flask

from ivr.jobs.queue import (JobsConfigError, app_periodic_task, app_task, bind_app, bound_app, configure,
                            huey, storage_description)

__all__ = ["JobsConfigError", "app_periodic_task", "app_task", "bound_app", "huey", "init_app",
           "storage_description", "TASK_MODULES"]

#: Modules that declare tasks; imported by init_app so the worker knows every task.
TASK_MODULES = ("ivr.jobs.retention", "ivr.jobs.outbox")


def init_app(app: Flask) -> None:
    """Configure the queue from the app's settings and make `app` the one tasks run in."""
    configure(app.config, app.instance_path)
    bind_app(app)
    for name in TASK_MODULES:
        importlib.import_module(name)
