"""WSGI entry point: `gunicorn app:app`, `flask --app app run`."""
import gc

from ivr import create_app

app = create_app()
# The rules, classifier and prompts loaded above live as long as the process: freezing them
# keeps them out of every garbage collection (a full pass over them took ~30 ms, a p99 spike).
gc.freeze()
