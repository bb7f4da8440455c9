"""IVR_ACTIVE_WEBHOOKS (ivr.web.admission): at most N webhooks of a process run at once; the others
wait, blocked, and every place is given back whatever the webhook did. No timing: threads are
followed through the gate's own count of waiters."""
from __future__ import annotations

import logging
import threading

import pytest
from flask import Response

from conftest import signed_post, simulated_call
from ivr.web.admission import EXTENSION

HANG_GUARD_S = 30   # only so a broken gate fails instead of hanging the suite


@pytest.fixture
def app(app_config):
    from ivr import create_app

    app = create_app({**app_config, "IVR_ACTIVE_WEBHOOKS": 1})
    entered: dict[str, threading.Event] = {}
    release: dict[str, threading.Event] = {}

    def hold(name: str) -> Response:   # a webhook path that runs until the test lets it go
        entered[name].set()
        assert release[name].wait(HANG_GUARD_S)
        if name == "boom":
            raise RuntimeError("a webhook that fails")
        return Response("<Response/>", mimetype="text/xml")

    app.add_url_rule("/voice/test-hold/<name>", "test_hold", hold, methods=["POST"])
    app.entered, app.release = entered, release
    return app


def start(app, name: str) -> tuple[threading.Thread, list]:
    app.entered[name], app.release[name] = threading.Event(), threading.Event()
    answers: list = []

    def post() -> None:
        try:
            answers.append(app.test_client().post(f"/voice/test-hold/{name}"))
        except RuntimeError as exc:   # TESTING propagates a view's exception to the client
            answers.append(exc)

    thread = threading.Thread(target=post)
    thread.start()
    return thread, answers


def wait_for_waiters(gate, n: int) -> None:
    """Until `n` webhooks wait at the gate (a short poll: the gate has no event for it)."""
    for _ in range(HANG_GUARD_S * 1000):
        if gate.waiting == n:
            return
        threading.Event().wait(0.001)
    raise AssertionError(f"{gate.waiting} waiting, not {n}")


def test_one_place_a_second_webhook_waits_and_other_pages_do_not(app, client):
    gate = app.extensions[EXTENSION]
    first, first_answer = start(app, "a")
    assert app.entered["a"].wait(HANG_GUARD_S)
    second, second_answer = start(app, "b")
    wait_for_waiters(gate, 1)
    assert not app.entered["b"].is_set() and gate.free == 0      # blocked at the gate, no work done
    assert client.get("/healthz").status_code in (200, 503)      # not a webhook: never waits
    app.release["a"].set()
    assert app.entered["b"].wait(HANG_GUARD_S)                   # the place passed on
    app.release["b"].set()
    first.join(HANG_GUARD_S), second.join(HANG_GUARD_S)
    assert first_answer[0].status_code == 200 and second_answer[0].status_code == 200
    assert gate.free == 1 and gate.waiting == 0


def test_a_failing_webhook_gives_its_place_back(app):
    gate = app.extensions[EXTENSION]
    thread, answer = start(app, "boom")
    assert app.entered["boom"].wait(HANG_GUARD_S)
    app.release["boom"].set()
    thread.join(HANG_GUARD_S)
    assert isinstance(answer[0], RuntimeError) and gate.free == 1 and gate.waiting == 0


def test_real_calls_go_through_one_place(app, client):
    call = simulated_call(client)
    call.call()
    call.silence()
    assert call.last.status_code == 200 and call.has("Gather")
    assert app.extensions[EXTENSION].free == 1


def test_places_go_to_waiting_webhooks_in_the_order_they_came(app):
    gate = app.extensions[EXTENSION]
    first, _ = start(app, "first")
    assert app.entered["first"].wait(HANG_GUARD_S)
    waiters = []
    for n, name in enumerate(("w0", "w1", "w2", "w3"), start=1):
        waiters.append(start(app, name))
        wait_for_waiters(gate, n)                   # queued before the next one comes
    order = []
    app.release["first"].set()
    for name in ("w0", "w1", "w2", "w3"):
        # Exactly one waiter gets the place each time it is given back, and it is the oldest.
        assert app.entered[name].wait(HANG_GUARD_S)
        order.append(name)
        assert [other for other in ("w0", "w1", "w2", "w3") if app.entered[other].is_set()] == order
        app.release[name].set()
    for thread, answer in [(first, None), *waiters]:
        thread.join(HANG_GUARD_S)
    assert order == ["w0", "w1", "w2", "w3"] and gate.free == 1 and gate.waiting == 0


def test_a_recording_being_recognised_holds_no_place(app, client, monkeypatch, caplog):
    from ivr.web import admission

    gate = app.extensions[EXTENSION]
    held, _ = start(app, "busy")
    assert app.entered["busy"].wait(HANG_GUARD_S) and gate.free == 0
    monkeypatch.setattr(admission, "WAIT_S", 0.0)   # a webhook the gate counts gives up at once, and says so
    with caplog.at_level(logging.WARNING, logger="ivr.web.admission"):
        # The one place is taken, yet the recording path goes straight in (a real recording is
        # downloaded and recognised for seconds: it must not hold up the worker's other webhooks).
        recorded = signed_post(client, "/voice/recorded?step=ask&n=1", {"CallSid": "CA" + "7" * 32})
        assert "waited" not in caplog.text
        status = signed_post(client, "/voice/status", {"CallSid": "CA" + "7" * 32, "CallStatus": "completed"})
        assert "waited" in caplog.text                  # the check can fail: an ordinary webhook is counted
    assert recorded.status_code == 200 and status.status_code == 200
    app.release["busy"].set()
    held.join(HANG_GUARD_S)


def test_off_by_default(app_config):
    from ivr import create_app

    assert EXTENSION not in create_app(app_config).extensions
