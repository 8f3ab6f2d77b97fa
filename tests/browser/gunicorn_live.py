"""gunicorn settings for the tests' live server (the bind comes on the command line): the
production worker, one process unless a test asks for more."""

import os

workers = int(os.environ.get("GUNICORN_LIVE_WORKERS") or 1)  # more only with REDIS_URL
worker_class = "worker.CampusWorker"
worker_connections = 1000
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE") or 5)
loglevel = "warning"


def post_worker_init(worker) -> None:
    """Each worker's mail sender starts with it (app/mail.py): messages a worker that died
    left in the outbox go out without waiting for a request."""
    from app.mail import start_senders

    start_senders()
