"""gunicorn for the benchmarks: started on a free local port, ready once /healthz answers 200,
stopped with its whole process group on exit. Used by bench/calls.py, bench/sms.py and
bench/stream_calls.py, so each measures the server the same way.

    with Gunicorn(["-c", "gunicorn.conf.py"], port=port, env=env, cwd=ROOT) as server:
        ...  # server.base, server.pid, server.workers(), server.cpu_s()
"""
from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Mapping, Sequence

GUNICORN = [sys.executable, "-m", "gunicorn"]   # the gunicorn of the Python running the bench


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_cpu_seconds(master_pid: int) -> dict[int, float]:
    """User+system CPU seconds used so far by gunicorn's master and each worker, by pid (Linux)."""
    used: dict[int, float] = {}
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    for pid in [master_pid, *map(int, children)]:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        used[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return used


class Gunicorn:
    """`gunicorn ARGS` in its own session (so its workers stop with it). Use as a context manager.

    `log_path`: gunicorn's output goes there (else to this terminal). `start_s`: how long it may
    take to answer /healthz 200 (the IVR loads rules, prompts and recognisers at start).
    """

    def __init__(self, args: Sequence[str], *, port: int, env: Mapping[str, str], cwd: Path,
                 log_path: Path | None = None, start_s: float = 180) -> None:
        self.command = [*GUNICORN, *args]
        self.port, self.env, self.cwd, self.log_path, self.start_s = port, dict(env), cwd, log_path, start_s
        self.base = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log: IO[str] | None = None

    @property
    def pid(self) -> int:
        """The master's pid."""
        assert self.proc is not None, "not started"
        return self.proc.pid

    def __enter__(self) -> "Gunicorn":
        self.log = self.log_path.open("w") if self.log_path else None
        self.proc = subprocess.Popen(self.command, cwd=self.cwd, env=self.env, stdout=self.log,
                                     stderr=subprocess.STDOUT if self.log else None, start_new_session=True)
        deadline = time.monotonic() + self.start_s
        where = f"; see {self.log_path}" if self.log_path else ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.__exit__()
                raise SystemExit(f"gunicorn exited with {self.proc.returncode}{where}")
            if self._healthy():
                return self
            time.sleep(0.3)
        self.__exit__()
        raise SystemExit(f"gunicorn did not answer /healthz 200 within {self.start_s:g} s{where}")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.log is not None:
            self.log.close()
            self.log = None

    def _healthy(self) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            conn.request("GET", "/healthz")
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()

    # -- what the workers use (Linux /proc) ---------------------------------------------------
    def workers(self) -> list[int]:
        """The worker processes' pids."""
        path = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        return [int(pid) for pid in path.read_text().split()] if path.exists() else []

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the workers have used so far."""
        return sum(used for pid, used in server_cpu_seconds(self.pid).items() if pid != self.pid)

    def memory_mb(self) -> list[tuple[float, float]]:
        """(resident MB now, peak resident MB) per worker."""
        sizes = []
        for pid in self.workers():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except FileNotFoundError:
                continue
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            sizes.append((int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024))
        return sizes

    def log_text(self) -> str:
        """What gunicorn has written to `log_path` so far."""
        assert self.log_path is not None, "no log_path"
        if self.log is not None:
            self.log.flush()
        return self.log_path.read_text(errors="replace")
