"""Requests per second of GET /auth/login against a bare Flask "hello", same gunicorn settings.

Both apps run under gunicorn with the settings of gunicorn.conf.py (one worker, gthread; the
production setup without Redis) on 127.0.0.1, one after the other, in rounds; the load comes
from wrk when it is installed (apt-get install wrk), else from a small Python client. Every
run is bounded in time. Prints each round and the ratio; record it in BENCHMARKS.md.

    .venv/bin/python bench/bench_pages.py [--seconds 5] [--rounds 3] [--connections 16]
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(app: str, env: dict[str, str], path: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [
        sys.executable, "-m", "gunicorn", "--config", str(ROOT / "gunicorn.conf.py"),
        "--bind", f"127.0.0.1:{port}", "--access-logfile", "/dev/null",
        "--log-level", "warning", app,
    ]  # fmt: skip
    server = subprocess.Popen(command, cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}{path}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return server, url
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit(f"{app} did not start")


def wrk(url: str, seconds: int, connections: int) -> float:
    output = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", url],
        capture_output=True, text=True, check=True, timeout=seconds + 30,
    ).stdout  # fmt: skip
    return float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))


def python_load(url: str, seconds: int, connections: int) -> float:
    """A fallback load generator: keep-alive connections in threads, counting 200s."""
    host, _, rest = url.removeprefix("http://").partition("/")
    hostname, port = host.split(":")
    stop_at = time.monotonic() + seconds
    counts = [0] * connections

    def run(slot: int) -> None:
        connection = http.client.HTTPConnection(hostname, int(port), timeout=5)
        while time.monotonic() < stop_at:
            connection.request("GET", "/" + rest)
            response = connection.getresponse()
            response.read()
            counts[slot] += response.status == 200
        connection.close()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    load = wrk if shutil.which("wrk") else python_load

    workdir = Path(tempfile.mkdtemp(prefix="campus-bench-"))
    env = os.environ | {
        "CAMPUS_CONFIG": "production",
        "SECRET_KEY": "bench-only-secret",
        "DATABASE_URL": f"sqlite:///{workdir / 'bench.db'}",
    }
    env.pop("REDIS_URL", None)  # the single-process setup that `make run` users deploy first
    flask = [sys.executable, "-m", "flask", "--app", "wsgi"]
    subprocess.run([*flask, "db", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True)

    apps = {"hello": ("bench.hello_app:app", "/"), "login": ("wsgi:app", "/auth/login")}
    results: dict[str, list[float]] = {name: [] for name in apps}
    print(f"load: {load.__name__}, {args.connections} connections, {args.seconds} s a run")
    for round_number in range(1, args.rounds + 1):
        for name, (app, path) in apps.items():
            server, url = start(app, env, path)
            try:
                load(url, 1, args.connections)  # warm-up
                rps = load(url, args.seconds, args.connections)
            finally:
                server.terminate()
                server.wait(timeout=20)
            results[name].append(rps)
            print(f"round {round_number}: {name:<6} {rps:8.0f} requests/s")

    hello, login = (statistics.median(results[name]) for name in ("hello", "login"))
    print(f"median hello      {hello:8.0f} requests/s")
    print(f"median /auth/login {login:7.0f} requests/s")
    print(f"ratio             {login / hello:8.1%}")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
