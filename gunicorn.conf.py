"""gunicorn settings for production: `gunicorn wsgi:app` reads this file.

Threads, not processes, carry the load: each open WebSocket (the live channel) holds a worker
thread, so a worker needs many of them. Without REDIS_URL the live broker and the rate limits
live in memory, so the app must run as exactly one process; with Redis, any number.
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "32"))
if os.environ.get("REDIS_URL"):
    workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2))
else:
    workers = 1

# A request that takes longer than this is stuck; sockets are kept alive by pings instead.
timeout = 60
graceful_timeout = 20
keepalive = 5
max_requests = 5000
max_requests_jitter = 500

accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")


def on_starting(server) -> None:
    """Before any worker runs: remove uploads a crash left half-written, and stored files no
    row points to (DESIGN.md "Files"). Nothing is uploading yet, so nothing in use is lost."""
    from app import create_app
    from app.blueprints.materials.services import sweep

    sweep(create_app(os.environ.get("CAMPUS_CONFIG", "production")))
