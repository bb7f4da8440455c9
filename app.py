"""WSGI entry point: `gunicorn app:app`, `flask --app app run`."""
from ivr import create_app

app = create_app()
