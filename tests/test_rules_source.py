"""Hot reload: the live rules follow the file; a broken file is refused and the last good rules serve.

A bare Flask app with only `rules_source.init_app` keeps these tests independent of the other edges.
"""
from __future__ import annotations

import logging
import os
import shutil

import pytest
from flask import Flask

from conftest import RULES_PATH
from ivr import rules_source
from ivr.routing.problems import ConfigError
from ivr.rules_source import CHECK_INTERVAL, RulesSource


class FakeClock:
    """Monotonic time the test moves by hand, so throttling is tested without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def rewrite(path, old: str, new: str) -> None:
    """Edit the rules file and move its mtime forward (file systems may have coarse timestamps)."""
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))


@pytest.fixture
def rules_file(tmp_path):
    path = tmp_path / "routing_rules.yaml"
    shutil.copy(RULES_PATH, path)
    return path


@pytest.fixture
def bare_app(rules_file):
    app = Flask(__name__)
    app.config.update(IVR_RULES_PATH=str(rules_file), IVR_RULES_RELOAD=True)
    rules_source.init_app(app)
    return app


def test_init_app_serves_the_rules_and_a_classifier(bare_app, rules_file):
    with bare_app.app_context():
        rules = rules_source.current_rules()
        assert rules.source == str(rules_file)
        assert "roads" in rules.departments
        assert rules_source.current_classifier().rules is rules


def test_changed_file_is_reloaded_with_a_new_classifier(bare_app, rules_file):
    with bare_app.app_context():
        before = rules_source.current_classifier()
        rewrite(rules_file, "Streets and Roads", "Streets and Bridges")
        assert rules_source.check_now() is True
        assert rules_source.current_rules().departments["roads"].name["en"] == "Streets and Bridges"
        after = rules_source.current_classifier()
        assert after is not before and after.rules is rules_source.current_rules()


def test_invalid_file_is_refused_logged_and_last_good_rules_keep_serving(bare_app, rules_file, caplog):
    with bare_app.app_context():
        good = rules_source.current_rules()
        rewrite(rules_file, "  route: 0.75", "  route: 7.5")
        with caplog.at_level(logging.ERROR, logger="ivr.rules_source"):
            assert rules_source.check_now() is False
        assert rules_source.current_rules() is good
        assert "invalid" in caplog.text and "thresholds.route is 7.5" in caplog.text
        assert f"{rules_file}:" in caplog.text   # FILE:LINE problems in the log

        rewrite(rules_file, "  route: 7.5", "  route: 0.8")   # the admin fixes it
        assert rules_source.check_now() is True
        assert rules_source.current_rules().thresholds.route == 0.8


def test_logged_problems_never_carry_a_full_phone_number(bare_app, rules_file, caplog):
    with bare_app.app_context():
        rewrite(rules_file, '"+1 312 555 0105"', '"312 555 0105"')
        rewrite(rules_file, "{date: 2026-10-14,", "{date: 2026-09-31,")   # health's staff training
        with caplog.at_level(logging.ERROR, logger="ivr.rules_source"):
            assert rules_source.check_now() is False
    assert "is not a valid phone number" in caplog.text
    assert "312 555 0105" not in caplog.text and "3125550105" not in caplog.text
    assert "0105" in caplog.text   # the tail is kept so the admin can tell which one
    assert "invalid date '2026-09-31'" in caplog.text   # dates are not numbers to hide


def test_deleted_file_keeps_the_last_good_rules(bare_app, rules_file, caplog):
    with bare_app.app_context():
        good = rules_source.current_rules()
        rules_file.unlink()
        with caplog.at_level(logging.ERROR, logger="ivr.rules_source"):
            assert rules_source.check_now() is False
        assert rules_source.current_rules() is good
        assert "cannot read the rules file" in caplog.text


def test_file_is_looked_at_no_more_than_once_a_second(rules_file):
    clock = FakeClock()
    live = RulesSource(rules_file, clock=clock)
    rewrite(rules_file, "Streets and Roads", "Roadways")
    clock.now += CHECK_INTERVAL / 2
    assert live.rules().departments["roads"].name["en"] == "Streets and Roads"   # too soon to look
    clock.now += CHECK_INTERVAL / 2
    assert live.rules().departments["roads"].name["en"] == "Roadways"


def test_an_invalid_version_is_judged_once_not_every_second(rules_file, caplog):
    clock = FakeClock()
    live = RulesSource(rules_file, clock=clock)
    rewrite(rules_file, "operator: operator", "operator: nobody")
    with caplog.at_level(logging.ERROR, logger="ivr.rules_source"):
        for _ in range(3):
            clock.now += CHECK_INTERVAL
            live.rules()
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1


def test_reload_can_be_switched_off_but_still_forced(rules_file):
    clock = FakeClock()
    live = RulesSource(rules_file, reload=False, clock=clock)
    rewrite(rules_file, "Streets and Roads", "Roadways")
    clock.now += 10 * CHECK_INTERVAL
    assert live.rules().departments["roads"].name["en"] == "Streets and Roads"
    assert live.maybe_reload(force=True) is True
    assert live.rules().departments["roads"].name["en"] == "Roadways"


def test_invalid_file_at_start_refuses_to_start(rules_file, caplog):
    rewrite(rules_file, "timezone: America/Chicago", "timezone: America/Chicagoo")
    app = Flask(__name__)
    app.config.update(IVR_RULES_PATH=str(rules_file))
    with caplog.at_level(logging.ERROR, logger="ivr.rules_source"), pytest.raises(ConfigError) as caught:
        rules_source.init_app(app)
    assert "unknown time zone 'America/Chicagoo'" in str(caught.value)
    assert "cannot start" in caplog.text
    assert rules_source.EXTENSION not in app.extensions
