"""The console through Flask's test client: accounts, roles, CSRF, queue, calls, feedback,
callbacks with a fake Twilio REST API, reports, and the rules editor (browser tests are in
test_console_browser.py)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import simulated_call
from console_helpers import PASSWORD, Console, add_users, console_config, queued_call, transferred_call
from fake_twilio_rest import ACCOUNT_SID, AUTH_TOKEN, FakeTwilioRest
from ivr.store import audit, db
from ivr.store.console import ContentVersion, Feedback, WorkItem


@pytest.fixture
def app_config(app_config, tmp_path):
    return console_config(app_config, tmp_path)


@pytest.fixture
def app(app):
    add_users(app)
    return app


def audit_actions(app) -> list[str]:
    with app.app_context():
        return [e.action.removeprefix("console.") for e in reversed(audit.recent(db.session(), 200))
                if e.action.startswith("console.")]


# --- accounts, roles, CSRF -----------------------------------------------------------------------
def test_pages_need_a_signed_in_user(client):
    response = client.get("/console/queue")
    assert response.status_code == 302 and "/console/login" in response.headers["Location"]
    assert client.get("/console/pop.json").status_code == 302


def test_wrong_password_then_lockout_is_audited(app):
    console = Console(app)
    for _ in range(4):
        assert "Wrong username or password" in console.login("alice", "nope").get_data(as_text=True)
    assert "locked" in console.login("alice", "nope").get_data(as_text=True)
    # Even the right password is refused while locked.
    assert console.login("alice", PASSWORD).status_code == 200
    assert audit_actions(app).count("login.failed") == 6


def test_unknown_user_gets_the_same_answer(app):
    console = Console(app)
    assert "Wrong username or password" in console.login("mallory", PASSWORD).get_data(as_text=True)


@pytest.mark.parametrize("user, allowed, refused", [
    ("alice", ["/console/queue", "/console/calls", "/console/work"], ["/console/reports", "/console/rules", "/console/users"]),
    ("sam", ["/console/reports", "/console/reports.csv", "/console/feedback.jsonl"], ["/console/rules", "/console/prompts/en"]),
    ("ada", ["/console/rules", "/console/prompts/en", "/console/users", "/console/reports"], []),
])
def test_roles_are_checked_on_the_server(app, user, allowed, refused):
    console = Console(app, user)
    for path in allowed:
        assert console.get(path).status_code == 200, path
    for path in refused:
        assert console.get(path).status_code == 403, path
    assert console.post("/console/rules", {"rules": "x"}).status_code == (403 if user != "ada" else 422)


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(app, client):
    sim = transferred_call(client)
    console = Console(app, "alice")
    response = console.client.post(f"/console/calls/{sim.sid}/feedback",
                                   data={"correct_department": "water", "verdict": "wrong"})
    assert response.status_code == 400 and "Nothing was changed" in response.get_data(as_text=True)
    forged = console.client.post(f"/console/calls/{sim.sid}/feedback",
                                 data={"correct_department": "water", "verdict": "wrong", "csrf_token": "forged"})
    assert forged.status_code == 400
    with app.app_context():
        assert db.session().query(Feedback).count() == 0


def test_login_form_needs_its_csrf_token_too(app):
    response = app.test_client().post("/console/login", data={"username": "alice", "password": PASSWORD})
    assert response.status_code == 400


def test_cookies_are_secure_and_httponly_in_production(tmp_path, app_config):
    from ivr import create_app

    production = create_app({**app_config, "TESTING": False, "IVR_SECRET_KEY": "k" * 32})
    assert production.config["SESSION_COOKIE_SECURE"] and production.config["SESSION_COOKIE_HTTPONLY"]
    add_users(production, {"pat": ("agent", "")})
    console = Console(production)
    response = console.login("pat", PASSWORD)
    cookie = response.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie


def test_webhooks_set_no_session_cookie_and_console_sessions_still_work(app, client):
    """The session interface skips work on requests without a session cookie (ivr.web.console
    CookieSessions): webhooks must get no cookie, and signing in and out must behave as before."""
    call = simulated_call(client)
    for step in (call.call, call.silence, lambda: call.say("I got a parking ticket and I want to contest it")):
        reply = step()
        assert reply.status_code == 200 and "Set-Cookie" not in reply.headers, reply.headers
    console = Console(app)
    assert console.get("/console/queue").status_code == 302            # no session: to the login page
    signed_in = console.login("alice", PASSWORD)
    assert signed_in.status_code == 302 and "session=" in signed_in.headers["Set-Cookie"]
    assert console.get("/console/queue").status_code == 200             # the cookie carries the user
    signed_out = console.post("/console/logout")
    assert signed_out.status_code == 302
    assert console.get("/console/queue").status_code == 302
    console.client.set_cookie("session", "forged.value.here")
    assert console.get("/console/queue").status_code == 302


def test_users_cli_has_no_default_user_and_manages_accounts(app_config, monkeypatch, tmp_path):
    from ivr.cli import cli

    for key in ("IVR_DATABASE_URL", "IVR_RULES_PATH", "IVR_PROMPTS_DIR"):
        monkeypatch.setenv(key, app_config[key])
    runner = CliRunner()
    assert runner.invoke(cli, ["users", "list"]).stdout == ""   # logs go to stderr
    added = runner.invoke(cli, ["users", "add", "bo", "--role", "agent", "--password-stdin", "--line", "+13125550104"],
                          input="a long enough password\n")
    assert added.exit_code == 0, added.output
    short = runner.invoke(cli, ["users", "add", "cy", "--role", "agent", "--password-stdin"], input="short\n")
    assert short.exit_code != 0 and "at least 10" in short.output
    assert runner.invoke(cli, ["users", "add", "bo", "--role", "admin", "--password-stdin"],
                         input="another long password\n").exit_code != 0
    assert "bo\tagent\t+13125550104\tactive" in runner.invoke(cli, ["users", "list"]).stdout
    assert runner.invoke(cli, ["users", "disable", "bo"]).exit_code == 0
    assert "disabled" in runner.invoke(cli, ["users", "list"]).stdout
    reset = runner.invoke(cli, ["users", "reset-password", "bo", "--password-stdin"], input="a brand new password\n")
    assert reset.exit_code == 0 and "active" in runner.invoke(cli, ["users", "list"]).stdout


def test_disabled_user_is_signed_out(app):
    console = Console(app, "alice")
    admin = Console(app, "ada")
    with app.app_context():
        from ivr.web.console.auth import find
        alice_id = find(db.session(), "alice").id
    assert admin.post(f"/console/users/{alice_id}/disable", page="/console/users").status_code == 302
    assert console.get("/console/queue").status_code == 302


# --- queue, screen pop, calls ----------------------------------------------------------------------
def test_queue_shows_a_waiting_caller_masked_until_bridged(app, client):
    console = Console(app, "alice")
    assert "No one is waiting" in console.get("/console/queue?fragment=1").get_data(as_text=True)
    sim = queued_call(client)
    html = console.get("/console/queue?fragment=1").get_data(as_text=True)
    assert "Parking Services" in html and "parking ticket" in html and "parking_ticket" in html
    assert "+1******0123" in html and "+13125550123" not in html
    sim.queue_ends("hangup", queue_time=40)
    assert "No one is waiting" in console.get("/console/queue?fragment=1").get_data(as_text=True)


def test_dequeue_hook_is_signed_and_pops_the_agents_screen(app, client):
    sim = queued_call(client)
    agent = Console(app, "alice")          # alice's line is +1 312 555 0101
    after = agent.get("/console/pop.json").get_json()["after"]
    url = "https://ivr.example.test/console/hooks/dequeued?line=%2B13125550101"
    assert sim.post(url, sim.params(QueueSid="QU1", QueueTime=20), signature="forged").status_code == 403
    assert agent.get(f"/console/pop.json?after={after}").get_json()["pops"] == []
    assert sim.post(url, sim.params(QueueSid="QU1", QueueTime=20)).status_code == 200
    pops = agent.get(f"/console/pop.json?after={after}").get_json()["pops"]
    assert [p["sid"] for p in pops] == [sim.sid] and pops[0]["from"] == "+1******0123"
    assert "Parking" in pops[0]["department"]
    # Somebody else's line sees nothing; the caller has left the live queue.
    assert Console(app, "sam").get(f"/console/pop.json?after={after}").get_json()["pops"] == []
    assert "No one is waiting" in agent.get("/console/queue?fragment=1").get_data(as_text=True)


def test_transfer_whisper_pops_the_screen_of_the_dialled_line(app, client):
    sim = transferred_call(client)
    agent = Console(app, "alice")
    after = agent.get("/console/pop.json").get_json()["after"]
    sim.whisper()
    pops = agent.get(f"/console/pop.json?after={after}").get_json()["pops"]
    assert [p["sid"] for p in pops] == [sim.sid] and "pothole" in pops[0]["heard"]


def test_whisper_notes_a_known_call_once_and_an_unknown_call_not_at_all(app, client):
    """The whisper reads the call once and hands what it read to note_bridged (no second read)."""
    from ivr.store.models import Event

    sim = transferred_call(client)
    agent = sim.whisper()
    assert "pothole" in " ".join(agent.texts()), agent.texts()   # the agent hears what was said
    stranger = simulated_call(client)
    stray = stranger.post(f"/voice/whisper?call=CA{'0' * 32}", stranger.params(To="+13125550101"))
    assert stray.status_code == 200 and stranger.texts(), "an unknown call still gets a whisper"
    with app.app_context():
        bridged = db.session().query(Event).filter(Event.kind == "bridged").all()
    assert [e.call_sid for e in bridged] == [sim.sid]


def test_call_story_tells_questions_answers_decisions_and_outcome(app, client):
    sim = transferred_call(client)
    sim.dial_ends("completed", duration=30)
    html = Console(app, "alice").get(f"/console/calls/{sim.sid}").get_data(as_text=True)
    assert "Briefly, what are you calling about?" in html
    assert "I want to report a pothole on Main Street" in html
    assert "speech confidence 92 %" in html
    assert "Decided</strong>: transfer" in html and "confidence" in html
    assert "transferred" in html and "Streets and Roads" in html
    assert "+13125550123" not in html


def test_call_search_by_words_department_and_outcome(app, client):
    pothole = transferred_call(client)
    parking = queued_call(client)
    console = Console(app, "alice")
    found = console.get("/console/calls?q=pothole").get_data(as_text=True)
    assert pothole.sid in found and parking.sid not in found
    assert parking.sid in console.get("/console/calls?department=parking").get_data(as_text=True)
    by_outcome = console.get("/console/calls?outcome=queued").get_data(as_text=True)
    assert parking.sid in by_outcome and pothole.sid not in by_outcome
    assert pothole.sid not in console.get("/console/calls?from=2099-01-01").get_data(as_text=True)


def test_feedback_is_stored_reported_and_exported_for_ivr_route(app, client, tmp_path):
    sim = transferred_call(client)   # routed to roads; the agent says it was a water matter
    agent = Console(app, "alice")
    saved = agent.post(f"/console/calls/{sim.sid}/feedback", {"correct_department": "water", "verdict": "wrong",
                                                              "note": "smell = water quality"},
                       page=f"/console/calls/{sim.sid}")
    assert saved.status_code == 302
    story = agent.get(f"/console/calls/{sim.sid}").get_data(as_text=True)
    assert "wrong department → Water and Sewer" in story
    right = transferred_call(client)
    agent.post(f"/console/calls/{right.sid}/feedback", {"verdict": "right"}, page=f"/console/calls/{right.sid}")
    supervisor = Console(app, "sam")
    report = supervisor.get("/console/reports").get_data(as_text=True)
    assert 'id="accuracy">50 %' in report and "Water and Sewer" in report
    export = supervisor.get("/console/feedback.jsonl").get_data(as_text=True).splitlines()
    items = [json.loads(line) for line in export]
    assert {i["department"] for i in items} == {"water", "roads"}
    assert all(i["text"] and i["lang"] == "en" for i in items)
    labelled = tmp_path / "feedback.jsonl"
    labelled.write_text("\n".join(export) + "\n")
    from ivr.cli import cli

    scored = CliRunner().invoke(cli, ["route", "--batch", str(labelled), "--json", "--rules", app.config["IVR_RULES_PATH"]])
    assert scored.exit_code == 0, scored.output
    results = [json.loads(line) for line in scored.output.splitlines()]
    assert len(results) == 2 and all("department" in r for r in results)
    correct = [r for r in results if "input" not in r or "department" not in r["input"]]
    assert len(correct) == sum(1 for i in items if i["verdict"] == "right")   # the line still routes as before
    assert "feedback" in audit_actions(app)


# --- callbacks and voicemails ---------------------------------------------------------------------
@pytest.fixture
def fake_twilio(app):
    with FakeTwilioRest() as fake:
        app.config.update(TWILIO_ACCOUNT_SID=ACCOUNT_SID, TWILIO_AUTH_TOKEN=AUTH_TOKEN, IVR_TWILIO_API_URL=fake.url)
        yield fake


def _callback_request(app, client) -> int:
    """A caller leaves a voicemail (queue → press 1 → record); returns the work item's id."""
    sim = queued_call(client)
    sim.queue_ends("leave")
    assert sim.has("Record")
    sim.record(duration=9)
    Console(app, "sam").get("/console/work")
    with app.app_context():
        return db.session().query(WorkItem).one().id


def test_callback_claim_call_back_and_retry_rules(app, client, fake_twilio):
    item_id = _callback_request(app, client)
    alice = Console(app, "alice")
    page = alice.get(f"/console/work/{item_id}").get_data(as_text=True)
    assert "+1******0123" in page and "+13125550123" not in page        # masked until claimed
    assert alice.post(f"/console/work/{item_id}/claim", page="/console/work").status_code == 302
    page = alice.get(f"/console/work/{item_id}").get_data(as_text=True)
    assert "+13125550123" in page                                         # shown to the agent working it
    assert "+13125550123" not in Console(app, "sam").get(f"/console/work/{item_id}").get_data(as_text=True)
    assert "already claimed" in Console(app, "sam").post(f"/console/work/{item_id}/claim", follow_redirects=True).get_data(as_text=True)

    alice.post(f"/console/work/{item_id}/call", page=f"/console/work/{item_id}")
    assert len(fake_twilio.calls) == 1
    placed = fake_twilio.calls[0]
    assert placed["To"] == "+1 312 555 0101" and placed["From"] == "+13125550311"
    assert "<Number>+13125550123</Number>" in placed["Twiml"] and 'callerId="+13125550311"' in placed["Twiml"]
    assert all(r["authorised"] for r in fake_twilio.requests)

    alice.post(f"/console/work/{item_id}/outcome", {"outcome": "no_answer"}, page=f"/console/work/{item_id}")
    with app.app_context():
        item = db.session().get(WorkItem, item_id)
        assert (item.status, item.attempts, item.claimed_by) == ("open", 1, None)
        assert (item.due_at - item.last_attempt_at).total_seconds() == pytest.approx(15 * 60, abs=2)
    for attempt in (2, 3):
        alice.post(f"/console/work/{item_id}/claim", page="/console/work")
        alice.post(f"/console/work/{item_id}/call", page=f"/console/work/{item_id}")
        alice.post(f"/console/work/{item_id}/outcome", {"outcome": "busy"}, page=f"/console/work/{item_id}")
    with app.app_context():
        item = db.session().get(WorkItem, item_id)
        assert (item.status, item.attempts) == ("gave_up", 3)
    assert audit_actions(app).count("work.outcome") == 3 and audit_actions(app).count("work.call") == 3


def test_callback_refused_by_twilio_changes_nothing(app, client, fake_twilio):
    item_id = _callback_request(app, client)
    alice = Console(app, "alice")
    alice.post(f"/console/work/{item_id}/claim", page="/console/work")
    fake_twilio.fail_next(400, 21211, "The 'To' number is not a valid phone number")
    page = alice.post(f"/console/work/{item_id}/call", page=f"/console/work/{item_id}", follow_redirects=True)
    assert "Twilio refused the call (21211" in page.get_data(as_text=True)
    with app.app_context():
        assert db.session().get(WorkItem, item_id).attempts == 0
    alice.post(f"/console/work/{item_id}/outcome", {"outcome": "reached"}, page=f"/console/work/{item_id}")
    with app.app_context():
        assert db.session().get(WorkItem, item_id).status == "done"


# --- reports -------------------------------------------------------------------------------------
def test_reports_count_real_calls(app, client):
    transferred_call(client).dial_ends("completed", duration=20)
    waited = queued_call(client)
    waited.queue_ends("bridged", queue_time=30)
    gave_up = queued_call(client)
    gave_up.queue_ends("hangup", queue_time=200)
    sam = Console(app, "sam")
    html = sam.get("/console/reports?n=60").get_data(as_text=True)
    assert "3 calls" in html and 'id="containment">100 %' in html
    assert 'id="service-level">50 %' in html and "<svg" in html
    csv_text = sam.get("/console/reports.csv?n=60").get_data(as_text=True)
    rows = {tuple(line.split(",")[:2]): line.split(",")[2] for line in csv_text.splitlines()[1:]}
    assert rows[("calls", "all")] == "3"
    assert rows[("queue_wait_avg_s", "all queue exits")] == "115.0"
    assert rows[("queue_wait_p90_s", "all queue exits")] == "200.0"
    assert rows[("queue_abandonment_rate", "hung up while queued")] == "0.5"
    assert rows[("transfers", "Streets and Roads")] == "1"


# --- rules editor --------------------------------------------------------------------------------
def test_broken_rules_edit_is_refused_with_file_line_and_changes_nothing(app):
    admin = Console(app, "ada")
    path = Path(app.config["IVR_RULES_PATH"])
    before = path.read_text()
    broken = before.replace('line: "+1 312 555 0101"', 'line: "not a phone"', 1)
    response = admin.post("/console/rules", {"rules": broken}, page="/console/rules")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    line = before.splitlines().index('    line: "+1 312 555 0101"') + 1
    assert f"routing_rules.yaml:{line}:" in html
    assert path.read_text() == before
    with app.app_context():
        assert db.session().query(ContentVersion).count() == 0


def test_good_rules_edit_applies_to_the_next_call_and_rolls_back(app, client):
    admin = Console(app, "ada")
    path = Path(app.config["IVR_RULES_PATH"])
    original = path.read_text()
    edited = original.replace('line: "+1 312 555 0101"', 'line: "+1 312 555 0199"', 1)
    assert admin.post("/console/rules", {"rules": edited, "note": "roads moved"}, page="/console/rules").status_code == 302
    assert path.read_text() == edited
    assert transferred_call(client).find("Dial/Number").text == "+13125550199"
    with app.app_context():
        versions = db.session().query(ContentVersion).order_by(ContentVersion.id).all()
        assert [v.author for v in versions] == ["(file)", "ada"]
        assert '+    line: "+1 312 555 0199"' in versions[1].diff
        first = versions[0].id
    admin.post(f"/console/versions/{first}/rollback", page="/console/rules")
    assert path.read_text() == original
    assert transferred_call(client).find("Dial/Number").text == "+13125550101"
    assert {"rules.save", "rules.rollback"} <= set(audit_actions(app))


def test_try_it_box_explains_what_the_line_would_do(app):
    admin = Console(app, "ada")
    html = admin.post("/console/rules/try", {"try-sentence": "there is a pothole on my street", "try-language": "en"},
                      page="/console/rules").get_data(as_text=True)
    assert "transfer → Streets and Roads" in html and "pothole" in html


def test_broken_prompts_edit_is_refused(app):
    admin = Console(app, "ada")
    path = Path(app.config["IVR_PROMPTS_DIR"]) / "en.yaml"
    before = path.read_text()
    broken = before.replace("{department}", "{departmnet}", 1)
    response = admin.post("/console/prompts/en", {"prompts": broken}, page="/console/prompts/en")
    assert response.status_code == 422 and "prompts/en.yaml:" in response.get_data(as_text=True)
    assert path.read_text() == before


# --- several instances ------------------------------------------------------------------------------
@pytest.mark.db
def test_a_rules_edit_reaches_every_instance_through_the_database(db_url, app_config, tmp_path):
    """Two app instances with their own rules files on one database: an edit saved on one is
    served by the other at its next request (IVR_CONTENT_SYNC_S=0 here; 1 s by default)."""
    from ivr import create_app

    first_dir, second_dir = tmp_path / "one", tmp_path / "two"
    first_dir.mkdir()
    second_dir.mkdir()
    first = create_app({**console_config(app_config, first_dir), "IVR_DATABASE_URL": db_url})
    second = create_app({**console_config(app_config, second_dir), "IVR_DATABASE_URL": db_url})
    add_users(first, {"ada": ("admin", "")})
    original = Path(first.config["IVR_RULES_PATH"]).read_text()
    edited = original.replace('line: "+1 312 555 0101"', 'line: "+1 312 555 0188"', 1)
    admin = Console(first, "ada")
    assert admin.post("/console/rules", {"rules": edited}, page="/console/rules").status_code == 302
    assert transferred_call(second.test_client()).find("Dial/Number").text == "+13125550188"
    assert Path(second.config["IVR_RULES_PATH"]).read_text() == edited
    # A third instance started later catches up too.
    third_dir = tmp_path / "three"
    third_dir.mkdir()
    third = create_app({**console_config(app_config, third_dir), "IVR_DATABASE_URL": db_url})
    assert transferred_call(third.test_client()).find("Dial/Number").text == "+13125550188"


def test_prompts_page_lists_play_buttons_that_render_the_words(app):
    admin = Console(app, "ada")
    page = admin.get("/console/prompts/en").get_data(as_text=True)
    assert 'name="prompts"' in page and "/console/prompts/en/play/goodbye" in page
    played = admin.get("/console/prompts/en/play/goodbye?format=json").get_json()
    assert played["key"] == "goodbye" and played["words"]
    assert played["audio"] is None        # IVR_TTS=off here: the page says what Twilio's voice would read
    assert admin.get("/console/prompts/en/play/no_such_prompt").status_code == 404


def test_callers_waiting_for_the_operator_desk_are_in_the_queue_too(app, client):
    from conftest import simulated_call

    sim = simulated_call(client)
    sim.call()
    sim.press("0")                                   # the operator desk answers by queue
    assert sim.find("Enqueue").text == "operator"
    html = Console(app, "alice").get("/console/queue?fragment=1").get_data(as_text=True)
    assert sim.sid in html and "General Information" in html
