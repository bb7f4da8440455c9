"""The WSGI application for production servers: `gunicorn -c gunicorn.conf.py` (which names it).

Inside the package, so an installed wheel serves the same way as a checkout.
"""
import gc
import sys

from ivr import create_app

app = create_app()
# The rules, classifier and prompts loaded above live as long as the process: freezing them
# keeps them out of every garbage collection (a full pass over them took ~30 ms, a p99 spike).
gc.freeze()

# How long a busy thread may keep the GIL before another gets it (Python's default is 5 ms). Every
# webhook holds the database's write turn (on SQLite: ivr/store/sqlite.py) from its first write to
# its commit and gives up the GIL in each of those ~5 statements; with 32 threads per worker, each
# time it wants the GIL back it waited up to 5 ms behind a thread parsing or rendering, and the
# other 31 threads (and the other worker) queued behind the turn it held. py-spy under
# bench/calls.py --mode closed: 31 of 32 threads waiting for the turn, the worker at 13 % of a core.
# At 0.5 ms (same machine, load 12-15, two runs each): p99 1485 / 2254 ms and 279 / 156 webhooks/s
# against 2839 / 3631 ms and 158 / 63 webhooks/s at 5 ms. IVR_GIL_SWITCH_MS sets it.
sys.setswitchinterval(max(float(app.config.get("IVR_GIL_SWITCH_MS") or 5.0), 0.1) / 1000)
