"""WSGI entry point of a checkout: `gunicorn app:app`, `flask --app app run` (see ivr/wsgi.py)."""
from ivr.wsgi import app  # noqa: F401  (re-exported for the servers that look for app:app)
