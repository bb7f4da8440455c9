"""A wheel carries everything the line reads at run time, so `pip install city-ivr` serves calls.

Static checks of pyproject.toml against the tree; tests/test_plain_install.py builds the wheel,
installs it into a fresh venv and serves a call from it.
"""
from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
# Files in the package tree that are not needed at run time.
NOT_SHIPPED = ("*.pyc", "*/__pycache__/*", "*.md")


def tracked(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and not any(
        fnmatch.fnmatch(p.relative_to(ROOT).as_posix(), pattern) for pattern in NOT_SHIPPED)]


def test_every_shipped_city_file_is_installed_by_the_wheel():
    patterns = [pattern for sources in SETUPTOOLS["data-files"].values() for pattern in sources]
    shipped = [ROOT / "routing_rules.yaml", *tracked(ROOT / "prompts"), *tracked(ROOT / "grammars")]
    missing = [p.relative_to(ROOT).as_posix() for p in shipped
               if not any(fnmatch.fnmatch(p.relative_to(ROOT).as_posix(), pattern) for pattern in patterns)]
    assert not missing, f"add these to [tool.setuptools.data-files] in pyproject.toml: {missing}"


def test_every_data_file_inside_the_package_is_package_data():
    package_data = SETUPTOOLS.get("package-data", {})
    missing = []
    for path in tracked(ROOT / "ivr"):
        if path.suffix == ".py" and "migrations" not in path.parts:
            continue                                     # modules are found by packages.find
        relative = path.relative_to(ROOT)
        covered = False
        for package, patterns in package_data.items():
            base = Path(*package.split("."))
            if relative.is_relative_to(base):
                inner = relative.relative_to(base).as_posix()
                covered = covered or any(fnmatch.fnmatch(inner, pattern) for pattern in patterns)
        if not covered:
            missing.append(relative.as_posix())
    assert not missing, f"add these to [tool.setuptools.package-data] in pyproject.toml: {missing}"


def test_the_installed_copy_is_found_when_there_is_no_checkout(tmp_path, monkeypatch):
    from ivr import config

    share = tmp_path / config.SHARE
    (share / "prompts").mkdir(parents=True)
    (share / "routing_rules.yaml").write_text("languages: [en]\n")
    monkeypatch.setattr(config, "PROJECT_ROOT", tmp_path / "site-packages")
    monkeypatch.setattr(config.sys, "prefix", str(tmp_path))
    monkeypatch.setattr(config.sysconfig, "get_path", lambda name: str(tmp_path))
    assert config.shipped("routing_rules.yaml") == share / "routing_rules.yaml"
    assert config.shipped("prompts") == share / "prompts"
