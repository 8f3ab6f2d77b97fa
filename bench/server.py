"""Starting the app (or the baseline) under gunicorn for a benchmark, on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_environment(**extra: str) -> dict[str, str]:
    """Production settings on a fresh SQLite file (or DATABASE_URL when set), without Redis:
    the single-process setup that `make run` users deploy first."""
    workdir = Path(tempfile.mkdtemp(prefix="campus-bench-"))
    env = (
        os.environ
        | {
            "CAMPUS_CONFIG": "production",
            "SECRET_KEY": "bench-only-secret",
            "DATABASE_URL": os.environ.get("DATABASE_URL") or f"sqlite:///{workdir / 'bench.db'}",
        }
        | extra
    )
    env.pop("REDIS_URL", None)
    return env


def migrate(env: dict[str, str]) -> None:
    flask = [sys.executable, "-m", "flask", "--app", "wsgi"]
    subprocess.run([*flask, "db", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True)


@contextmanager
def gunicorn(app: str, env: dict[str, str], ready_path: str = "/", log: IO | None = None):
    """gunicorn with the settings of gunicorn.conf.py, answering on a free port; its output
    goes to `log` when given (a file), else to this process's."""
    port = free_port()
    command = [
        sys.executable, "-m", "gunicorn", "--config", str(ROOT / "gunicorn.conf.py"),
        "--bind", f"127.0.0.1:{port}", "--access-logfile", "/dev/null",
        "--log-level", "warning", app,
    ]  # fmt: skip
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url + ready_path, timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit(f"{app} did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()  # thousands of open sockets can outlast a graceful stop
            server.wait()
