"""The plain install (`pip install city-ivr`, no extras) runs the line on SQLite; PostgreSQL's
driver is imported only for a PostgreSQL URL, and without it the error names the extra.

Each check runs in a child Python where importing psycopg (3, the extra's driver) or psycopg2
fails, as on a machine without the `postgres` extra (the test venv has it, so blocking it is the
honest way to be without it here). ``postgresql://`` and ``postgresql+psycopg2://`` URLs are served
by psycopg 3 (ivr.store.db.postgres_on_psycopg), so without it they name the extra too.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Make `import psycopg` / `psycopg2` (and their submodules) fail as if not installed.
WITHOUT_PSYCOPG2 = textwrap.dedent("""
    import sys
    DRIVERS = {"psycopg", "psycopg_binary", "psycopg_c", "psycopg_pool", "psycopg2"}
    class _NoPostgresDriver:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in DRIVERS:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None
    sys.meta_path.insert(0, _NoPostgresDriver())
""")


def run_without_psycopg2(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    script = WITHOUT_PSYCOPG2 + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          timeout=90, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                                           "PYTHONPATH": str(ROOT / "tests")})


def test_a_whole_call_on_sqlite_without_the_postgres_driver(tmp_path):
    result = run_without_psycopg2(f"""
        import sys
        from datetime import datetime, timezone
        from ivr import create_app
        from conftest import PUBLIC_URL, TEST_AUTH_TOKEN as AUTH_TOKEN, simulated_call

        app = create_app({{"IVR_DATABASE_URL": "sqlite:///{tmp_path}/ivr.sqlite3",
                          "IVR_PUBLIC_URL": PUBLIC_URL, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                          "IVR_PROMPT_CACHE_DIR": "{tmp_path}/prompts", "IVR_TTS": "off",
                          "IVR_CAPTURE": "twilio", "IVR_SPEECH_ENGINE": "twilio",
                          "IVR_CLOCK": lambda: datetime(2026, 12, 1, 16, 0, tzinfo=timezone.utc)}})
        sim = simulated_call(app.test_client())
        sim.call()
        sim.press("1")                              # English
        sim.say("there is a pothole on main street")
        number = sim.find("Dial").find("Number")
        print("DIALLED", number.text if number is not None else None)
        sim.dial_ends("completed", 60)
        assert not {{"psycopg", "psycopg2"}} & set(sys.modules), "a PostgreSQL driver was imported for a SQLite URL"
        print("NO-PSYCOPG2")
    """, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "NO-PSYCOPG2" in result.stdout
    assert "DIALLED +1" in result.stdout    # the roads desk's number: the call reached a person


def test_the_cli_runs_without_the_postgres_driver(tmp_path):
    result = run_without_psycopg2("""
        import sys
        from ivr.cli import main
        sys.argv = ["ivr", "route", "pothole on main street", "--at", "2026-12-01T10:00", "--json"]
        main()
    """, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert '"department": "roads"' in result.stdout


def test_a_postgres_url_without_the_driver_names_the_extra(tmp_path):
    result = run_without_psycopg2("""
        import sys
        from ivr.cli import main
        sys.argv = ["ivr", "db", "current", "--url", "postgresql://postgres@127.0.0.1:5432/test"]
        main()
    """, tmp_path)
    assert result.returncode == 1
    assert "pip install 'city-ivr[postgres]'" in result.stderr
    assert "Traceback" not in result.stderr          # one clear line, not a stack


def test_the_app_refuses_a_postgres_url_without_the_driver(tmp_path):
    result = run_without_psycopg2(f"""
        from ivr import create_app
        from ivr.store.driver import MissingDriver
        try:
            create_app({{"IVR_DATABASE_URL": "postgresql+psycopg2://postgres@127.0.0.1/test",
                        "IVR_PROMPT_CACHE_DIR": "{tmp_path}/prompts", "IVR_TTS": "off"}})
        except MissingDriver as exc:
            print("REFUSED:", exc)
    """, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "REFUSED:" in result.stdout and "city-ivr[postgres]" in result.stdout


IGNORED = shutil.ignore_patterns(".git", ".venv", "instance", "build", "dist", "*.egg-info", "__pycache__",
                                 ".pytest_cache", "models")


@pytest.mark.timeout(600)
def test_the_wheel_alone_checks_routes_and_serves_a_call(tmp_path):
    """Build the wheel, install it into a fresh venv and run from a folder with no checkout in sight.

    The wheel goes in with --no-deps; its dependencies come from the test venv (a .pth file),
    with psycopg2 blocked as for the plain install. What this proves is the wheel's own content:
    the shipped rules, prompts, grammars and migrations are found without the repository.
    """
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=IGNORED)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    subprocess.run([*pip, "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
                    "-w", str(tmp_path / "dist"), str(source)], check=True, timeout=300, cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("city_ivr-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run([*pip, "--python", str(python), "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
                   check=True, timeout=300)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    deps = Path(subprocess.run([sys.executable, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "test_venv_dependencies.pth").write_text(f"{deps}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = lambda code: subprocess.run([str(python), "-c", WITHOUT_PSYCOPG2 + textwrap.dedent(code)],  # noqa: E731
                                      cwd=elsewhere, capture_output=True, text=True, timeout=240,
                                      env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})

    checked = run("""
        import sys, ivr
        print("IVR FROM", ivr.__file__)
        from ivr.cli import main
        sys.argv = ["ivr", "check"]
        main()
    """)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"IVR FROM {site}" in checked.stdout                       # the wheel's copy, not the checkout
    assert "share/city-ivr/routing_rules.yaml: OK" in checked.stdout and "prompts OK" in checked.stdout

    routed = run("""
        import sys
        from ivr.cli import main
        sys.argv = ["ivr", "route", "pothole on main street", "--at", "2028-07-04T10:00", "--json"]
        main()
    """)
    assert routed.returncode == 0, routed.stderr
    assert '"department": "roads"' in routed.stdout and '"action": "after_hours"' in routed.stdout

    called = run(f"""
        import sys
        from datetime import datetime, timezone
        sys.path.insert(0, {str(ROOT / "tests")!r})
        from conftest import PUBLIC_URL, TEST_AUTH_TOKEN as AUTH_TOKEN, simulated_call
        from ivr import create_app

        app = create_app({{"IVR_DATABASE_URL": "sqlite:///{tmp_path}/ivr.sqlite3", "IVR_TTS": "off",
                          "IVR_PUBLIC_URL": PUBLIC_URL, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                          "IVR_PROMPT_CACHE_DIR": "{tmp_path}/prompts", "IVR_JOBS_DB": "{tmp_path}/jobs.sqlite3",
                          "IVR_CAPTURE": "twilio", "IVR_SPEECH_ENGINE": "twilio",
                          "IVR_CLOCK": lambda: datetime(2026, 12, 1, 16, 0, tzinfo=timezone.utc)}})
        sim = simulated_call(app.test_client())
        sim.call()
        sim.press("1")
        sim.say("there is a pothole on main street")
        print("DIALLED", sim.find("Dial").find("Number").text)
    """)
    assert called.returncode == 0, called.stderr[-3000:]
    assert "DIALLED +13125550101" in called.stdout
