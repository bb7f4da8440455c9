"""Gunicorn settings for production: `gunicorn -c gunicorn.conf.py` (the README's command).

Every value can be changed without editing this file, through the environment (below) or
gunicorn's own flags and GUNICORN_CMD_ARGS (`--bind`, `--workers` … override what is set here).
tests/test_gunicorn.py starts the line with exactly this file and places calls through it.
"""
import os
import shutil
import tempfile

# The app (ivr/wsgi.py: create_app() from the IVR_* environment).
wsgi_app = "ivr.wsgi:app"

# Behind the TLS proxy that Twilio reaches (IVR_PUBLIC_URL is the proxy's https address).
bind = os.environ.get("IVR_BIND", "127.0.0.1:8000")

# Worker model. A Media Stream websocket holds one thread for the whole time the caller speaks,
# so workers are threaded: up to workers × threads streams and webhooks at once. The call's state
# lives in the database, so any worker can answer any webhook of any call.
worker_class = "gthread"
workers = int(os.environ.get("IVR_WORKERS", "2"))
threads = int(os.environ.get("IVR_THREADS", "32"))

# Decoding is CPU-bound: each worker has its own decode pool (ivr/speech/pool.py). Each pool may
# use every core (IVR_DECODE_THREADS, default one thread per core), not its share of them: calls
# land on the workers unevenly, and with one thread per worker a burst of callers finishing on one
# worker queued there while the other core idled. With a thread per core the operating system
# shares the cores between the workers' decodes (at most workers × cores run at once, each a little
# slower while all are busy). Modelled for 20 callers ending their sentences within seconds of each
# other on 2 cores (0.2 s decodes): last word → decision p90 803 ms with one thread per worker,
# 637 ms with one per core, 574 ms for one shared queue (which separate processes cannot have).
os.environ.setdefault("IVR_DECODE_THREADS", str(os.cpu_count() or 2))

# Each worker loads the app itself: the recognisers' decoder pools and threads do not survive a
# fork, so the app is not preloaded in the master.
preload_app = False

# Twilio gives a webhook 15 s; a worker silent for longer than `timeout` is stuck and is replaced
# (gthread workers report in from their main loop, so long websockets do not count as silence).
timeout = int(os.environ.get("IVR_WORKER_TIMEOUT", "30"))
# On a restart or deploy, a worker finishes what it has (a caller's turn, a webhook) for this long.
graceful_timeout = int(os.environ.get("IVR_GRACEFUL_TIMEOUT", "30"))
keepalive = 5

# gunicorn's control socket has one default path per user (~/.gunicorn/gunicorn.ctl), which a
# second gunicorn on the machine would take over; the line does not use it.
control_socket_disable = True

errorlog = "-"
loglevel = os.environ.get("IVR_LOG_LEVEL", "info")
# The app logs each request itself (no phone numbers); gunicorn's access log is off.
accesslog = None


# --- Prometheus multiprocess mode -----------------------------------------------------------
# Every worker writes its metrics to files in PROMETHEUS_MULTIPROC_DIR and /metrics adds them up,
# so counts are right whichever worker answers. prometheus_client reads the variable when it is
# first imported, which happens in the workers (no preload), after on_starting has set it.
# The directory must start empty on every start, or old workers' counts would be added again.
_made_metrics_dir = None


def on_starting(server):
    global _made_metrics_dir
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        directory = _made_metrics_dir = tempfile.mkdtemp(prefix="ivr-prometheus-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        if name.endswith(".db"):
            os.remove(os.path.join(directory, name))
    server.log.info("prometheus multiprocess directory: %s", directory)


def child_exit(server, worker):
    # A dead worker's live gauges (streams in use, pool in use) must stop counting.
    try:
        from prometheus_client import multiprocess
    except ImportError:
        return
    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _made_metrics_dir:
        shutil.rmtree(_made_metrics_dir, ignore_errors=True)
