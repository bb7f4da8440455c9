"""The WSGI application for production servers: `gunicorn -c gunicorn.conf.py` (which names it).

Inside the package, so an installed wheel serves the same way as a checkout.
"""
import gc

from ivr import create_app

app = create_app()
# The rules, classifier and prompts loaded above live as long as the process: freezing them
# keeps them out of every garbage collection (a full pass over them took ~30 ms, a p99 spike).
gc.freeze()
