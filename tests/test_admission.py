"""IVR_ACTIVE_WEBHOOKS (ivr.web.admission): at most N webhooks of a process run at once; the others
wait, blocked, and every place is given back whatever the webhook did. No timing: threads are
followed through the gate's own count of waiters."""
from __future__ import annotations

import threading

import pytest
from flask import Response

from conftest import simulated_call
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
    with gate.changed:
        assert gate.changed.wait_for(lambda: gate.waiting == n, timeout=HANG_GUARD_S)


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


def test_off_by_default(app_config):
    from ivr import create_app

    assert EXTENSION not in create_app(app_config).extensions
