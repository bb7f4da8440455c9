"""Alembic migrations build exactly the schema the models describe, on both backends."""
from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from ivr.store import db, replies
from ivr.store.models import Base

pytestmark = pytest.mark.db


@pytest.fixture
def engine(db_url):
    engine = db.make_engine(db_url)
    yield engine
    engine.dispose()


def test_migrated_schema_matches_the_models(engine):
    db.upgrade(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
        assert context.get_current_revision() == _head()
    assert diff == []


def _head() -> str:
    """The one head of the migration chain (migrations chain linearly: two heads is a mistake)."""
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory.from_config(db.alembic_config("sqlite://")).get_heads()
    assert len(heads) == 1, f"migrations must chain linearly, found heads {heads}"
    return heads[0]


def test_upgrade_twice_is_harmless(engine):
    db.upgrade(engine)
    db.upgrade(engine)
    assert {"calls", "turns", "events", "recordings", "messages", "idempotent_responses",
            "api_tokens", "audit_log", "app_secrets", "alembic_version"} <= set(inspect(engine).get_table_names())


def test_downgrade_to_base_removes_the_schema(engine):
    db.upgrade(engine)
    _downgrade(engine)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}


def _downgrade(engine):
    from alembic import command

    config = db.alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")


def test_cli_upgrade_then_current(db_url):
    from click.testing import CliRunner

    from ivr.cli import cli

    runner = CliRunner()
    before = runner.invoke(cli, ["db", "current", "--url", db_url])
    assert before.exit_code == 0 and "empty" in before.output
    upgraded = runner.invoke(cli, ["db", "upgrade", "--url", db_url])
    assert upgraded.exit_code == 0, upgraded.output
    after = runner.invoke(cli, ["db", "current", "--url", db_url])
    assert after.stdout.strip() == f"{_head()}: up to date"   # stderr may carry log lines


def test_cli_prune_forgets_only_old_answers(db_url):
    from datetime import timedelta

    from click.testing import CliRunner
    from sqlalchemy.orm import Session

    from ivr.cli import cli
    from ivr.store import models

    engine = db.make_engine(db_url)
    db.upgrade(engine)
    with Session(engine) as s:
        replies.remember_response(s, "fresh", "<Response/>")
        s.add(models.IdempotentResponse(key="stale", body="<Response/>",
                                        created_at=models.utcnow() - timedelta(hours=49)))
        s.commit()
    result = CliRunner().invoke(cli, ["db", "prune", "--url", db_url, "--hours", "48"])
    assert result.exit_code == 0, result.output
    assert "replies               1  removed" in result.output
    with Session(engine) as s:
        assert replies.recall_response(s, "fresh") == "<Response/>"
        assert replies.recall_response(s, "stale") is None
    engine.dispose()


def test_a_migration_in_another_schema_does_not_hold_this_one_up(engine, db_url):
    """Advisory locks are server-wide: the migration lock is keyed by schema, so another line's
    schema on the same server (or a parallel test run) migrating does not block this one."""
    if engine.url.get_backend_name() != "postgresql":
        pytest.skip("SQLite has no schemas or advisory locks; the PostgreSQL run of this test checks the lock")
    from sqlalchemy import text

    other_schema = db_url.rsplit("%3D", 1)[1] + "_other"
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{other_schema}"'))
    other = db.make_engine(db_url.rsplit("%3D", 1)[0] + "%3D" + other_schema)
    try:
        with db._migration_lock(other):   # the other line is mid-migration
            db.upgrade(engine)            # with one server-wide key: waits, then times out
        assert "alembic_version" in set(inspect(engine).get_table_names())
    finally:
        other.dispose()
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{other_schema}" CASCADE'))
