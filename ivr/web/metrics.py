"""GET /metrics — Prometheus exposition, for the city's monitoring only.

Answers only ``Authorization: Bearer $IVR_METRICS_TOKEN`` (401 otherwise) and is 404 when no
token is configured (metrics are off). Also times every Twilio webhook
(ivr_webhook_duration_seconds{endpoint,status}, endpoint being the URL rule, never the CallSid).
The series themselves are defined in ivr.metrics.
"""
from __future__ import annotations

import hmac
import logging
import time
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError

from ivr import metrics, outbox
from ivr.speech.pool import decode_pool
from ivr.store import db

log = logging.getLogger(__name__)

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics_view() -> Response:
    """The exposition text; 404 when IVR_METRICS_TOKEN is unset, 401 without it."""
    expected = current_app.config.get("IVR_METRICS_TOKEN") or ""
    if not expected:
        return Response("not found\n", status=404, mimetype="text/plain")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
        return Response("metrics need 'Authorization: Bearer <IVR_METRICS_TOKEN>'\n", status=401,
                        mimetype="text/plain", headers={"WWW-Authenticate": 'Bearer realm="ivr-metrics"'})
    _observe_outbox()
    return Response(generate_latest(metrics.registry()), mimetype=CONTENT_TYPE_LATEST)


def _observe_outbox() -> None:
    """Outbox depth and age, read from the database now (its workers may run on other hosts)."""
    try:
        outbox.observe_queue(db.session())
    except SQLAlchemyError as exc:   # the database is down: the other series still answer
        log.warning("metrics: outbox gauges not updated: %s", type(exc).__name__)


def _start_timer() -> None:
    g.ivr_request_started = time.perf_counter()


def _observe_webhook(response: Response) -> Response:
    started = g.pop("ivr_request_started", None)
    webhook = request.path.startswith(metrics.WEBHOOK_PREFIXES) and request.url_rule is not None and \
        request.headers.get("Upgrade", "").lower() != "websocket"     # a stream lasts the whole turn
    if started is not None and webhook:
        _webhook_series(request.url_rule.rule, response.status_code).observe(time.perf_counter() - started)
    return response


#: (endpoint rule, status) → its ivr_webhook_duration_seconds child: `labels()` validates and
#: locks on every call, and the few endpoints × statuses never change.
_SERIES: dict[tuple[str, int], Any] = {}


def _webhook_series(rule: str, status: int) -> Any:
    series = _SERIES.get((rule, status))
    if series is None:
        series = _SERIES[(rule, status)] = metrics.WEBHOOK_SECONDS.labels(endpoint=rule, status=str(status))
    return series


def init_app(app: Flask) -> None:
    """Register /metrics, time every webhook, and count the shared decode pool's waits."""
    app.register_blueprint(bp)
    app.before_request(_start_timer)
    app.after_request(_observe_webhook)
    pool = decode_pool()
    if id(pool) not in _observed_pools:      # one callback per pool, however many apps
        pool.observe(metrics.observe_decode_pool)
        _observed_pools.add(id(pool))


_observed_pools: set[int] = set()


