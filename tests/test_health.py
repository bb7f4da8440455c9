"""/healthz says ok or not ok, /readyz which check failed — neither says why (that is logged)."""
from __future__ import annotations

import logging
import shutil


def test_healthy_instance_says_ok_and_nothing_else(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def _app_without_database(app_config, tmp_path):
    from ivr import create_app

    db_dir = tmp_path / "db"
    db_dir.mkdir()
    app_config["IVR_DATABASE_URL"] = f"sqlite:///{db_dir / 'ivr.sqlite3'}"
    app = create_app(app_config)
    app.extensions["ivr.db.engine"].dispose()
    shutil.rmtree(db_dir)  # SQLite cannot open a file in a folder that is gone
    return app


def test_unreachable_database_is_503_not_ok_with_the_reason_only_in_the_log(app_config, tmp_path, caplog):
    app = _app_without_database(app_config, tmp_path)
    with caplog.at_level(logging.WARNING, logger="ivr.web.health"):
        response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "not ok"}
    body = response.get_data(as_text=True)
    assert "unable to open" not in body and str(tmp_path) not in body and "sqlite" not in body
    assert "unable to open" in caplog.text


def test_health_never_shows_the_rules_path(client, app_config):
    for path in ("/healthz", "/readyz"):
        body = client.get(path).get_data(as_text=True)
        assert "routing_rules" not in body and app_config["IVR_RULES_PATH"] not in body


def test_readyz_checks_database_rules_and_recogniser(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready", "checks": {"database": "ok", "rules": "ok", "recogniser": "ok"}}


def test_readyz_waits_for_an_embedded_recogniser_to_load(app_config):
    from ivr import create_app
    from ivr.speech.service import speech_service

    app = create_app({**app_config, "IVR_SPEECH_ENGINE": "pocketsphinx", "IVR_SPEECH_ENGINE_ES": "twilio",
                      "IVR_CAPTURE": "stream"})
    client = app.test_client()
    waiting = client.get("/readyz")      # TESTING: nothing warmed at start
    assert waiting.status_code == 503
    assert waiting.get_json()["checks"] == {"database": "ok", "rules": "ok", "recogniser": "failed"}
    assert client.get("/healthz").status_code == 200       # alive, just not ready
    with app.app_context():
        speech_service().engine_for("en")
    assert client.get("/readyz").status_code == 200


def test_readyz_reports_the_failed_check_without_details(app_config, tmp_path):
    app = _app_without_database(app_config, tmp_path)
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "not ready",
                                   "checks": {"database": "failed", "rules": "ok", "recogniser": "ok"}}
