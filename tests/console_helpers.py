"""Helpers shared by the console tests: an app with its own copy of the rules and prompts,
users made the way an admin makes them, a signed-in test client, and calls driven by ivr.telephony.simulator.
"""
from __future__ import annotations

import re
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ivr.store import db
from ivr.web.console import auth
from conftest import simulated_call
from ivr.telephony.simulator import SimulatedCall

ROOT = Path(__file__).resolve().parent.parent
# Tuesday 10 March 2026, 10:00 in Chicago: every department is open.
OPEN = datetime(2026, 3, 10, 15, 0, tzinfo=timezone.utc)
PASSWORD = "correct horse battery"
USERS = {"alice": ("agent", "+1 312 555 0101"), "sam": ("supervisor", ""), "ada": ("admin", "")}
_TOKEN = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')


def console_config(app_config: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """Config whose rules and prompts are scratch copies: console edits never touch the repository."""
    rules = tmp_path / "routing_rules.yaml"
    shutil.copyfile(ROOT / "routing_rules.yaml", rules)
    prompts = tmp_path / "prompts"
    if not prompts.exists():
        shutil.copytree(ROOT / "prompts", prompts)
    return {**app_config, "IVR_RULES_PATH": str(rules), "IVR_PROMPTS_DIR": str(prompts), "IVR_TTS": "off",
            "IVR_CLOCK": lambda: OPEN, "IVR_CONTENT_SYNC_S": 0.0}


def add_users(app: Any, users: dict[str, tuple[str, str]] = USERS) -> None:
    with app.app_context():
        s = db.session()
        for name, (role, line) in users.items():
            auth.add_user(s, name, role, PASSWORD, line)
        s.commit()


def token(html: str) -> str:
    match = _TOKEN.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


class Console:
    """A test client signed in as one console user; `post` sends the page's CSRF token."""

    def __init__(self, app: Any, username: str | None = None) -> None:
        self.client = app.test_client()
        if username:
            response = self.login(username, PASSWORD)
            assert response.status_code == 302, response.get_data(as_text=True)[:500]

    def login(self, username: str, password: str) -> Any:
        page = self.client.get("/console/login").get_data(as_text=True)
        return self.client.post("/console/login", data={"username": username, "password": password,
                                                        "csrf_token": token(page)})

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(path, **kwargs)

    def post(self, path: str, data: dict[str, Any] | None = None, page: str | None = None, **kwargs: Any) -> Any:
        html = self.client.get(page or "/console/queue").get_data(as_text=True)
        return self.client.post(path, data={**(data or {}), "csrf_token": token(html)}, **kwargs)


def queued_call(client: Any, sentence: str = "I got a parking ticket and I want to contest it",
                from_: str = "+13125550123") -> SimulatedCall:
    """A caller who says `sentence` and ends up in a queue (parking answers by queue)."""
    sim = simulated_call(client, from_=from_)
    sim.call()
    sim.silence()
    sim.say(sentence)
    assert sim.has("Enqueue"), sim.texts()
    return sim


def transferred_call(client: Any, sentence: str = "I want to report a pothole on Main Street") -> SimulatedCall:
    sim = simulated_call(client)
    sim.call()
    sim.silence()
    sim.say(sentence)
    assert sim.has("Dial"), sim.texts()
    return sim
