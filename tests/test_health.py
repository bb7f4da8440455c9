"""GET /healthz tells a load balancer whether this instance can serve and record calls."""
from __future__ import annotations

import shutil


def test_healthy_instance_reports_rules_and_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    assert body["rules"]["departments"] == 14


def test_unreachable_database_is_503_with_the_reason(app_config, tmp_path):
    from ivr import create_app

    db_dir = tmp_path / "db"
    db_dir.mkdir()
    app_config["IVR_DATABASE_URL"] = f"sqlite:///{db_dir / 'ivr.sqlite3'}"
    app = create_app(app_config)
    app.extensions["ivr.db.engine"].dispose()
    shutil.rmtree(db_dir)  # SQLite cannot open a file in a folder that is gone
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "degraded"
    assert "unable to open" in body["database"]
