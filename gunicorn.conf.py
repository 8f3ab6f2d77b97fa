"""gunicorn settings for production: `gunicorn wsgi:app` reads this file.

Every signed-in tab holds a WebSocket (the live channel) for as long as it is open, so a worker
must hold thousands of mostly idle connections. gevent does: 5,000 sockets in one worker on a
2-core machine, where gthread (a thread per socket, and one more for its reader) ran out of
database connections under the GIL at 5,000 (BENCHMARKS.md, "Live chat"). Password hashing
runs in gevent's thread pool so a sign-in does not freeze the other sockets.
GUNICORN_WORKER_CLASS=gthread (with GUNICORN_THREADS) remains possible for small schools.

Without REDIS_URL the live broker and the rate limits live in memory, so the app must run as
exactly one process; with Redis, any number.
"""

import multiprocessing
import os
import subprocess
import sys

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "worker.CampusWorker")
threads = int(os.environ.get("GUNICORN_THREADS", "32"))  # gthread only
# Connections (open sockets included) one worker holds at once; raise the open-files limit
# (`ulimit -n`, systemd's LimitNOFILE) above twice this.
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", "6000"))
if os.environ.get("REDIS_URL"):
    workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2))
else:
    workers = 1

# A request that takes longer than this is stuck; sockets are kept alive by pings instead.
timeout = 60
graceful_timeout = 20
keepalive = 5
# A restart drops the worker's sockets (tabs reconnect and catch up), so not too often.
max_requests = 50000
max_requests_jitter = 500

accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")


def on_starting(server) -> None:
    """Before any worker runs: remove uploads a crash left half-written, and stored files no
    row points to (DESIGN.md "Files"). Nothing is uploading yet, so nothing in use is lost.
    In a process of its own: the app is never loaded into the master, so each gevent worker
    patches a clean interpreter after the fork."""
    flask = [sys.executable, "-m", "flask", "--app", "wsgi", "sweep-uploads"]
    subprocess.run(flask, check=True, cwd=os.path.dirname(os.path.abspath(__file__)))  # noqa: S603


def post_worker_init(worker) -> None:
    """Each worker's mail sender starts with it (app/mail.py): messages a worker that died
    left in the outbox go out without waiting for a request. Then the worker is readied for
    its first requests (app/__init__.py `warm_up`)."""
    from app import warm_up
    from app.mail import start_senders

    start_senders()
    if hasattr(worker.wsgi, "jinja_env"):  # not gunicorn's stand-in for an app that failed
        warm_up(worker.wsgi)
