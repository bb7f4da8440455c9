"""The app's secret key: signs the console's sessions and the prompt audio URLs that render on fetch.

IVR_SECRET_KEY when set (several machines must share it). Otherwise one key per machine, kept in
the instance folder: every gunicorn worker loads the app itself (no preload), so the workers must
find the same key there, or a URL signed by one would be refused by the other.
"""
from __future__ import annotations

import logging
import os
import secrets
import tempfile
from pathlib import Path

from flask import Flask

log = logging.getLogger(__name__)

FILE_NAME = "console-secret-key"   # its historical name: the console was its first user


def secret_key(app: Flask) -> str:
    """The app's SECRET_KEY, set once: configured, else (tests) random per app, else the instance file's."""
    key = app.config.get("IVR_SECRET_KEY") or app.config.get("SECRET_KEY")
    if not key:
        key = secrets.token_hex(32) if app.testing else _instance_key(Path(app.instance_path) / FILE_NAME)
    app.config["SECRET_KEY"] = str(key)
    return str(key)


def _instance_key(path: Path) -> str:
    """The key in `path`, made if there is none. Two workers starting together must not each write
    their own: the key is written to a temporary file and linked into place, which fails for the
    second worker, who then reads the first one's (never a half-written file)."""
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".secret-")
    try:
        with os.fdopen(handle, "w") as out:
            out.write(secrets.token_hex(32))
        os.chmod(temporary, 0o600)
        try:
            os.link(temporary, path)
            log.warning("no IVR_SECRET_KEY: made one in %s; set IVR_SECRET_KEY when several machines "
                        "serve the line, or their sessions and prompt URLs will not be shared", path)
        except FileExistsError:
            pass   # another worker made it first: use theirs
    finally:
        os.unlink(temporary)
    return _read(path)


def _read(path: Path) -> str:
    key = path.read_text().strip()
    if not key:
        raise RuntimeError(f"{path} is empty: delete it (a new key is made) or set IVR_SECRET_KEY")
    return key
