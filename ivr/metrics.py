"""Every Prometheus series of the line, in one place (the endpoint is ivr.web.metrics).

Code anywhere increments these objects directly (``metrics.CALLS.inc()``); nothing else
defines a metric, so names, labels and buckets are reviewed here. Labels hold only small,
fixed sets of values (endpoint rules, department ids, action kinds, engine names): never a
CallSid or a phone number, which would make a series per call.

Under gunicorn, several worker processes each count their own calls. prometheus_client's
multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, set by gunicorn.conf.py before the app is
imported) keeps every process's values in files that `/metrics` adds up, so the endpoint
answers the same totals whichever worker serves the scrape; `child_exit` tidies a dead
worker's gauges. Without the variable (``ivr serve``, tests) the usual in-process registry is used.

This module imports no Flask: any layer may count.
"""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from typing import Any, Iterator

from prometheus_client import (REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics,
                               multiprocess)

# The *_created series double every counter's output for a feature dashboards rarely use.
disable_created_metrics()

#: Twilio waits 15 s for a webhook; the buckets resolve the fast path and the deadline.
WEBHOOK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0)
DECODE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4)
#: Paths whose requests are Twilio webhooks (timed by ivr_webhook_duration_seconds).
WEBHOOK_PREFIXES = ("/voice/", "/sms")

# --- calls and decisions ----------------------------------------------------------------------------
WEBHOOK_SECONDS = Histogram("ivr_webhook_duration_seconds", "Time to answer a Twilio webhook",
                            ["endpoint", "status"], buckets=WEBHOOK_BUCKETS)
CALLS = Counter("ivr_calls", "Calls answered (first /voice/incoming of a CallSid)")
ROUTING_DECISIONS = Counter("ivr_routing_decisions", "Decisions taken, by department and action",
                            ["department", "action"])
CONFIRMATIONS = Counter("ivr_confirmations", "Answers to 'did you mean …?'", ["answer"])   # yes | no
MENU_FALLBACKS = Counter("ivr_menu_fallbacks", "Calls moved to the keypad menu")
OPERATOR_FALLBACKS = Counter("ivr_operator_fallbacks", "Decisions that send the caller to the operator")
RESCUES = Counter("ivr_rescues", "Webhook failures answered with the operator TwiML", ["endpoint"])
#: What the line did with each text (the reply's first text key: opened, ask_location, confirm, stopped …).
SMS_TEXTS = Counter("ivr_sms_texts", "Texts received on /sms/incoming, by what the line answered", ["outcome"])

# --- speech -------------------------------------------------------------------------------------------
ASR_DECODE_SECONDS = Histogram("ivr_asr_decode_seconds", "Time to finish recognising an utterance",
                               ["engine"], buckets=DECODE_BUCKETS)
DECODERS_IN_USE = Gauge("ivr_decoder_pool_in_use", "Embedded-engine decoders lent to calls",
                        multiprocess_mode="livesum")
DECODER_WAITS = Counter("ivr_decoder_pool_waits", "Borrows that found every decoder busy",
                        ["outcome"])   # got (one came free) | busy (gave up: keypad)
DECODE_QUEUE_WAIT_SECONDS = Histogram("ivr_decode_queue_wait_seconds", "Time decode jobs waited for a thread",
                                      buckets=DECODE_BUCKETS)
DECODE_JOBS_REFUSED = Counter("ivr_decode_jobs_refused", "Decode jobs not run", ["reason"])  # rejected | late
ACTIVE_STREAMS = Gauge("ivr_active_streams", "Media-stream websockets open now", multiprocess_mode="livesum")

# --- the store -------------------------------------------------------------------------------------
#: SQLite's write turn (ivr/store/sqlite.py): every webhook's writes take it. On a healthy line a
#: writer waits well under a millisecond; waits of several milliseconds at p99 mean the workers
#: queue behind each other's commits (measured under load in docs/operations.md), the sign that
#: the line has outgrown one SQLite file (IVR_DATABASE_URL=postgresql://…).
DB_TURN_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 10.0)
SQLITE_TURN_WAIT_SECONDS = Histogram(
    "ivr_sqlite_write_turn_wait_seconds",
    "Time a write transaction waited for SQLite's write turn (this worker's writers, then other workers')",
    buckets=DB_TURN_BUCKETS)
SQLITE_TURN_HELD_SECONDS = Histogram(
    "ivr_sqlite_write_turn_held_seconds",
    "Time a write transaction held SQLite's write turn (its first write to its commit or rollback)",
    buckets=DB_TURN_BUCKETS)
SQLITE_TURN_GAVE_UP = Counter(
    "ivr_sqlite_write_turn_gave_up",
    "Writers that waited 10 s for the write turn and went ahead without it (a request stuck somewhere)")

# --- prompts and rules --------------------------------------------------------------------------------
TTS_RENDERS = Counter("ivr_tts_renders", "Prompt audio renders", ["result"])   # ok | failed
SAY_FALLBACKS = Counter("ivr_say_fallbacks", "Prompts spoken with <Say> because no audio could be made")
# Fetches of render-on-fetch URLs whose file was not on disk yet (ivr/prompts/serving.py):
# served (rendered in time) | silence (render failed or late: the caller heard 0.3 s of silence) | refused (bad token: 404)
PROMPT_FETCH_RENDERS = Counter("ivr_prompt_fetch_renders", "Prompt audio fetched before its render was on disk",
                               ["result"])
RULES_RELOADS = Counter("ivr_rules_reloads", "Rules files reloaded after a change")
RULES_RELOADS_REFUSED = Counter("ivr_rules_reloads_refused", "Changed rules files refused (invalid)")

# --- outbox (texts, department notifications) -------------------------------------------------------------
# Counted where delivery runs (`ivr worker`; its process shares PROMETHEUS_MULTIPROC_DIR when set).
OUTBOX_DELIVERIES = Counter("ivr_outbox_deliveries", "Outbox delivery attempts by outcome",
                            ["kind", "result"])   # result: sent | failed (will retry) | dead
OUTBOX_SEND_SECONDS = Histogram("ivr_outbox_send_seconds", "Time to hand one message to its provider",
                                ["kind"], buckets=WEBHOOK_BUCKETS)
OUTBOX_SMS_DELIVERY = Counter("ivr_outbox_sms_delivery", "Twilio's later word on sent texts (StatusCallback)",
                              ["status"])   # delivered | undelivered | failed | sent | queued … | other
# Read from the database when /metrics is scraped (ivr.web.metrics), so every host reports the
# one shared outbox, wherever its workers run.
OUTBOX_MESSAGES = Gauge("ivr_outbox_messages", "Outbox rows by kind and status", ["kind", "status"],
                        multiprocess_mode="mostrecent")
OUTBOX_OLDEST_WAITING_SECONDS = Gauge("ivr_outbox_oldest_waiting_seconds",
                                      "Age of the oldest row not yet sent or dead (0: none waiting)",
                                      multiprocess_mode="mostrecent")


def engine_label(engine_or_recognizer: Any) -> str:
    """A short engine name for labels: the engine's `name`, else its module (pocketsphinx, vosk …)."""
    name = getattr(engine_or_recognizer, "name", None)
    if isinstance(name, str) and name:
        return name
    return type(engine_or_recognizer).__module__.rsplit(".", 1)[-1]


@contextmanager
def decode_timer(engine_or_recognizer: Any) -> Iterator[None]:
    """Time a decode into ivr_asr_decode_seconds{engine}."""
    started = time.perf_counter()
    try:
        yield
    finally:
        ASR_DECODE_SECONDS.labels(engine=engine_label(engine_or_recognizer)).observe(time.perf_counter() - started)


#: (metric, label values) → its child, made on first use as `labels()` makes it (a series appears
#: once counted). `labels()` validates and locks on every call; the values here are few.
_CHILDREN: dict[tuple[Any, tuple[str, ...]], Any] = {}


def _child(metric: Any, *values: str) -> Any:
    child = _CHILDREN.get((metric, values))
    if child is None:
        child = _CHILDREN[(metric, values)] = metric.labels(*values)
    return child


def observe_decision(previous_step: str, action: Any, reason: str, answered: bool) -> None:
    """Count one decision of the conversation (called where the webhook applies it).

    `answered`: the decision answers a caller's turn (not a dial or queue result).
    """
    kind = getattr(action, "kind", "") or "unknown"
    _child(ROUTING_DECISIONS, getattr(action, "department", None) or "", kind).inc()
    if answered and previous_step == "confirm":
        if reason.startswith("caller confirmed"):
            _child(CONFIRMATIONS, "yes").inc()
        elif reason.startswith("caller said no"):
            _child(CONFIRMATIONS, "no").inc()
    if kind == "menu" and previous_step != "menu":
        MENU_FALLBACKS.inc()
    if kind == "operator":
        OPERATOR_FALLBACKS.inc()


def observe_decode_pool(event: str, seconds: float) -> None:
    """`DecodePool.observe` callback: waits and refusals of the shared decode threads."""
    if event == "wait":
        DECODE_QUEUE_WAIT_SECONDS.observe(seconds)
    else:
        DECODE_JOBS_REFUSED.labels(reason=event).inc()


# --- gunicorn (gunicorn.conf.py) -------------------------------------------------------------------------
# gunicorn.conf.py sets PROMETHEUS_MULTIPROC_DIR and empties that folder *before* anything imports
# prometheus_client (it picks its storage at import; a restart must not add up the previous run's
# files), and drops dead workers' gauges:
#
#     metrics_dir = os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", "instance/prometheus")
#     shutil.rmtree(metrics_dir, ignore_errors=True); os.makedirs(metrics_dir)
#     def child_exit(server, worker):
#         from ivr import metrics; metrics.child_exit(server, worker)

def registry() -> Any:
    """What to expose: every process's values under gunicorn, else this process's registry."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    combined = CollectorRegistry()
    multiprocess.MultiProcessCollector(combined)
    return combined


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn `child_exit` hook: drop the dead worker's live gauges."""
    multiprocess.mark_process_dead(worker.pid)
