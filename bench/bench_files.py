"""Downloading a 1 GB file through gunicorn against `cat FILE > /dev/null` in the same run, and
the server's memory (RSS) growth during a 1 GB download and a 500 MB upload.

The same download from gunicorn's gthread worker in the same run: the gevent worker must be
at least as fast. Goals: at least 70 % of cat's rate; at most 30 MB of RSS growth for each.

    .venv/bin/python bench/bench_files.py [--download-mb 1024] [--upload-mb 500]
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from server import bench_environment, gunicorn, migrate

from tests.live_client import LiveClient

PASSWORD = "bench-files-password"
CHUNK = 1024 * 1024


def seed(env: dict[str, str], download_mb: int) -> tuple[int, int, Path]:
    """A teacher, a course and one material of `download_mb` MB written straight to disk."""
    os.environ.update(env)
    from app import create_app
    from app.blueprints.auth.services import hash_password
    from app.blueprints.materials import storage
    from app.extensions import db
    from app.models import Course, Material, User

    app = create_app("production")
    with app.app_context():
        teacher = User(username="teacher", email="teacher@bench.example", full_name="Teacher",
                       role="teacher", password_hash=hash_password(PASSWORD), bio="")  # fmt: skip
        db.session.add(teacher)
        db.session.flush()
        course = Course(title="Files", capacity=None, published=True, teacher_id=teacher.id,
                        description="", keywords="")  # fmt: skip
        db.session.add(course)
        db.session.flush()
        block, sha = os.urandom(CHUNK), hashlib.sha256()
        storage.files_dir().mkdir(parents=True, exist_ok=True)
        path = storage.files_dir() / "bench-download"
        with path.open("wb") as file:
            for _ in range(download_mb):
                file.write(block)
                sha.update(block)
        material = Material(course_id=course.id, title="Big", original_name="big.zip",
                            stored_name=path.name, content_type="application/zip",
                            size=download_mb * CHUNK, sha256=sha.hexdigest())  # fmt: skip
        db.session.add(material)
        db.session.commit()
        return course.id, material.id, path


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def workers_of(port: int) -> list[int]:
    """The gunicorn worker processes (the master's children) serving this port."""
    master = subprocess.run(["pgrep", "-f", f"127.0.0.1:{port}"], capture_output=True, text=True)
    pids = [int(pid) for pid in master.stdout.split()]
    children = subprocess.run(
        ["pgrep", "-P", ",".join(map(str, pids))], capture_output=True, text=True
    )
    return [int(pid) for pid in children.stdout.split()] or pids


class PeakRss:
    """The largest RSS growth of some processes while the block runs."""

    def __init__(self, pids: list[int]) -> None:
        self.pids, self.start = pids, {pid: rss_kb(pid) for pid in pids}
        self.peak, self.done = dict(self.start), threading.Event()

    def __enter__(self) -> PeakRss:
        def watch() -> None:
            while not self.done.wait(0.02):
                for pid in self.pids:
                    self.peak[pid] = max(self.peak[pid], rss_kb(pid))

        self.thread = threading.Thread(target=watch)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()

    @property
    def growth_mb(self) -> float:
        return max(self.peak[pid] - self.start[pid] for pid in self.pids) / 1024


def download(client: LiveClient, material_id: int) -> tuple[float, int]:
    """curl as the browser: a client in Python would measure itself, not the server."""
    cookies = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    url = f"http://{client.host}:{client.port}/materials/{material_id}/download"
    began = time.perf_counter()
    command = ["curl", "-s", "-o", "/dev/null", "-w", "%{size_download}"]
    result = subprocess.run(
        [*command, "-H", f"Cookie: {cookies}", url], capture_output=True, text=True, check=True
    )
    return time.perf_counter() - began, int(result.stdout)


def upload(client: LiveClient, course_id: int, megabytes: int) -> tuple[float, int]:
    boundary = "campus-bench-upload"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n'
        f'{client.token}\r\n--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="video.mp4"\r\nContent-Type: video/mp4\r\n\r\n'
    ).encode()
    # An MP4 header so that libmagic calls it video; the rest is filler.
    mp4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
    tail = f"\r\n--{boundary}--\r\n".encode()
    filler = b"\x00" * CHUNK
    length = len(head) + len(mp4) + megabytes * CHUNK + len(tail)

    def body():
        yield head + mp4
        for _ in range(megabytes):
            yield filler
        yield tail

    cookies = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    connection = http.client.HTTPConnection(client.host, client.port, timeout=300)
    began = time.perf_counter()
    connection.request("POST", f"/courses/{course_id}/materials", body=body(), headers={
        "Cookie": cookies, "Content-Length": str(length),
        "Content-Type": f"multipart/form-data; boundary={boundary}",
    })  # fmt: skip
    status = connection.getresponse().status
    connection.close()
    return time.perf_counter() - began, status


def cat_seconds(path: Path) -> float:
    began = time.perf_counter()
    subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--download-mb", type=int, default=1024)
    parser.add_argument("--upload-mb", type=int, default=500)
    args = parser.parse_args()

    uploads = Path(tempfile.mkdtemp(prefix="campus-bench-uploads-"))
    env = bench_environment(
        UPLOAD_DIR=str(uploads), MAX_UPLOAD_MB=str(args.upload_mb + 10),
        LOGIN_ADDRESS_LIMIT="1000 per minute",
    )  # fmt: skip
    migrate(env)
    course_id, material_id, path = seed(env, args.download_mb)
    cat_seconds(path)  # both read from the page cache
    # The same download from gunicorn's gthread worker, whose sockets block and so send files
    # with the kernel's sendfile: what the gevent worker (worker.py) must match.
    gthread_env = env | {"GUNICORN_WORKER_CLASS": "gthread", "GUNICORN_THREADS": "4"}
    with gunicorn("wsgi:app", gthread_env, "/healthz") as url:
        client = LiveClient(url)
        client.sign_in("teacher", PASSWORD)
        download(client, material_id)  # warm-up
        gthread_seconds = min(download(client, material_id)[0] for _ in range(3))
    with gunicorn("wsgi:app", env, "/healthz") as url:
        client = LiveClient(url)
        client.sign_in("teacher", PASSWORD)
        pids = workers_of(client.port)
        download(client, material_id)  # warm-up
        baseline = min(cat_seconds(path) for _ in range(3))
        with PeakRss(pids) as download_rss:
            seconds, received = min(download(client, material_id) for _ in range(3))
        assert received == args.download_mb * CHUNK, received
        with PeakRss(pids) as upload_rss:
            upload_seconds, status = upload(client, course_id, args.upload_mb)
    mb = args.download_mb
    print(f"cat {mb} MB:        {baseline:6.2f} s  {mb / baseline:8.0f} MB/s")
    print(f"download {mb} MB:   {seconds:6.2f} s  {mb / seconds:8.0f} MB/s"
          f"  ({baseline / seconds:.0%} of cat; gevent worker, worker.py)")  # fmt: skip
    print(f"gthread {mb} MB:    {gthread_seconds:6.2f} s  {mb / gthread_seconds:8.0f} MB/s"
          f"  (gevent: {gthread_seconds / seconds:.0%} of its rate; goal ≥ 100%)")  # fmt: skip
    print(f"RSS growth during the download: {download_rss.growth_mb:6.1f} MB")
    print(f"upload {args.upload_mb} MB: {upload_seconds:6.2f} s  status {status}"
          f"  RSS growth {upload_rss.growth_mb:.1f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
