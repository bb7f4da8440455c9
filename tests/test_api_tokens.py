"""Named API tokens: hashed at rest, scoped (calls vs full numbers), revocable, every read audited."""
from __future__ import annotations

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import text

from ivr.cli import cli
from ivr.store import audit, calls, db, tokens
from ivr.web import api

pytestmark = pytest.mark.db
NUMBER = "+15551234567"


@pytest.fixture
def api_app(db_url):
    app = Flask("api-tokens-test")
    app.config.update(IVR_DATABASE_URL=db_url, IVR_API_TOKEN="bootstrap-secret", TESTING=True)
    db.init_app(app)
    api.init_app(app)
    with app.app_context():
        s = db.session()
        calls.ensure_call(s, "CA100", NUMBER, "+15550001111")
        s.commit()
    yield app
    db.engine(app).dispose()


def cli_run(db_url, *args):
    result = CliRunner().invoke(cli, ["api", *args, "--url", db_url])   # click ≥ 8.2: stdout apart
    assert result.exit_code == 0, result.output
    return result


def make_token(db_url, name, *scopes) -> str:
    args = ["tokens", "add", name]
    for scope in scopes:
        args += ["--scope", scope]
    return cli_run(db_url, *args).stdout.strip().splitlines()[0]


def get(app, path, token):
    return app.test_client().get(path, headers={"Authorization": f"Bearer {token}"})


def audit_entries(app):
    with app.app_context():
        return [(e.actor, e.action, e.target, e.detail) for e in reversed(audit.recent(db.session(), 100))]


def test_a_token_is_shown_once_and_stored_only_as_a_hash(api_app, db_url):
    token = make_token(db_url, "reports")
    assert token.startswith("ivr_") and len(token) > 40
    with db.engine(api_app).connect() as conn:
        stored = conn.execute(text("SELECT name, token_hash, scopes FROM api_tokens")).all()
    assert stored == [("reports", tokens.hash_token(token), "calls:read")]
    assert token not in str(stored)
    listed = cli_run(db_url, "tokens", "list").stdout
    assert "reports" in listed and "calls:read" in listed and token not in listed


def test_calls_scope_reads_records_with_numbers_masked(api_app, db_url):
    token = make_token(db_url, "reports")
    one = get(api_app, "/api/calls/CA100", token)
    assert one.status_code == 200 and one.get_json()["from"] == "+1******4567"
    many = get(api_app, "/api/calls", token)
    assert many.get_json()["calls"][0]["from"] == "+1******4567"
    assert NUMBER not in one.get_data(as_text=True) + many.get_data(as_text=True)


def test_numbers_scope_reads_full_numbers(api_app, db_url):
    token = make_token(db_url, "callbacks", "calls:read", "numbers:read")
    assert get(api_app, "/api/calls/CA100", token).get_json()["from"] == NUMBER


def test_every_read_is_audited_with_token_time_and_what(api_app, db_url):
    reports = make_token(db_url, "reports")
    get(api_app, "/api/calls/CA100", reports)
    get(api_app, "/api/calls/CAnope", reports)
    get(api_app, "/api/calls?limit=5", reports)
    get(api_app, "/api/calls/CA100", "bootstrap-secret")
    reads = [entry for entry in audit_entries(api_app) if entry[1].startswith("api.calls")]
    assert reads == [
        ("token:reports", "api.calls.read", "CA100", {"found": True, "numbers": False}),
        ("token:reports", "api.calls.read", "CAnope", {"found": False, "numbers": False}),
        ("token:reports", "api.calls.list", "", {"limit": 5, "sids": ["CA100"], "numbers": False}),
        ("env:IVR_API_TOKEN", "api.calls.read", "CA100", {"found": True, "numbers": False}),
    ]
    with api_app.app_context():
        assert all(e.at is not None for e in audit.recent(db.session(), 10))
        assert tokens.listing(db.session())[0].last_used_at is not None
    shown = cli_run(db_url, "audit").stdout
    assert "token:reports" in shown and "api.calls.read" in shown and "CA100" in shown


def test_a_revoked_token_is_refused_at_once(api_app, db_url):
    token = make_token(db_url, "old")
    assert get(api_app, "/api/calls", token).status_code == 200
    cli_run(db_url, "tokens", "revoke", "old")
    assert get(api_app, "/api/calls", token).status_code == 401
    assert "revoked" in cli_run(db_url, "tokens", "list").stdout
    assert [e[1] for e in audit_entries(api_app) if e[1].startswith("api.tokens")] == \
        ["api.tokens.add", "api.tokens.revoke"]


def test_unknown_or_missing_tokens_are_refused_and_read_nothing(api_app):
    for token in ("ivr_guess", "", "bootstrap-secretX"):
        response = get(api_app, "/api/calls/CA100", token)
        assert response.status_code == 401 and NUMBER[2:] not in response.get_data(as_text=True)
    assert [e for e in audit_entries(api_app) if e[1].startswith("api.calls")] == []


def test_bootstrap_token_masks_numbers_unless_given_the_scope(api_app):
    assert get(api_app, "/api/calls/CA100", "bootstrap-secret").get_json()["from"] == "+1******4567"
    api_app.config["IVR_API_TOKEN_SCOPES"] = "calls:read,numbers:read"
    assert get(api_app, "/api/calls/CA100", "bootstrap-secret").get_json()["from"] == NUMBER


def test_bad_bootstrap_scopes_refuse_to_start(db_url):
    app = Flask("bad-scopes")
    app.config.update(IVR_DATABASE_URL=db_url, IVR_API_TOKEN_SCOPES="calls:write")
    with pytest.raises(RuntimeError, match="calls:write"):
        api.init_app(app)


@pytest.mark.parametrize("scopes, problem", [
    (["numbers:read"], "only widens"), (["calls:delete"], "unknown"), ([], "at least one")])
def test_scopes_are_checked(scopes, problem):
    with pytest.raises(tokens.TokenError, match=problem):
        tokens.check_scopes(scopes)


def test_names_are_unique_and_plain(api_app, db_url):
    make_token(db_url, "reports")
    again = CliRunner().invoke(cli, ["api", "tokens", "add", "reports", "--url", db_url])
    assert again.exit_code == 1 and "already exists" in again.output
    bad = CliRunner().invoke(cli, ["api", "tokens", "add", "no spaces please", "--url", db_url])
    assert bad.exit_code == 1 and "token name" in bad.output
