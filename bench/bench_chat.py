"""Live chat under load: N open sockets, 200 of them members of one course room; the time from
sending a message to its arrival at every member (p50, p99) and the server's memory, under
gunicorn's gevent worker (or others, --workers), against a bare flask-sock app that only fans
messages out, under the same gunicorn settings in the same run. Each socket count is run
--runs times (bare, then Campus, each on a fresh server), and each run prints both and the
ratio of their p99.

Goal (issue "Real-time chat", issue 17): 5,000 sockets; Campus's full path (session,
membership, store, render, publish) at most 1.5x the bare app's p99 in every run, and p50 at
most 10 ms with the message stored on PostgreSQL (set DATABASE_URL).

    .venv/bin/python bench/bench_chat.py [--sockets 1000,5000] [--runs 3] [--members 200]
        [--messages 40] [--warmup 5] [--workers gevent]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import re
import resource
import statistics
import time
from pathlib import Path

from server import bench_environment, gunicorn, migrate
from websockets.asyncio.client import connect

MARK = re.compile(r"bench-(\d+)-")


def seed(env: dict[str, str], members: int, sockets: int) -> tuple[int, list[str], list[str]]:
    """A course with its teacher and `members - 1` enrolled students, and enough people who
    are only connected for the other sockets at the app's limit of sockets per person (10:
    the 11th is refused). Returns the room id and session cookies (members, idle) signed with
    the server's key, so that thousands of sockets need no thousands of sign-ins."""
    os.environ.update(env)
    from app import create_app
    from app.extensions import db
    from app.models import ChatRoom, Course, Enrollment, User

    app = create_app("production")
    idle_people = math.ceil(max(sockets - members, 0) / app.config["SOCKETS_PER_PERSON"])
    with app.app_context():
        people = [
            User(username=f"p{n}", email=f"p{n}@bench.example", full_name=f"Person {n}",
                 role="teacher" if n == 0 else "student", password_hash="-", bio="")
            for n in range(members + idle_people)
        ]  # fmt: skip
        db.session.add_all(people)
        db.session.flush()
        course = Course(title="Busy course", published=True, teacher_id=people[0].id,
                        description="", keywords="")  # fmt: skip
        db.session.add(course)
        db.session.flush()
        db.session.add_all(
            Enrollment(course_id=course.id, student_id=person.id, status="enrolled")
            for person in people[1:members]
        )
        db.session.commit()
        room_id = db.session.query(ChatRoom.id).filter_by(course_id=course.id).scalar()
        serializer = app.session_interface.get_signing_serializer(app)

        def cookie(user: User) -> str:
            session = {"_user_id": user.get_id(), "_fresh": True}
            return f"session={serializer.dumps(session)}"

        return room_id, [cookie(u) for u in people[:members]], [cookie(u) for u in people[members:]]


def server_rss_mb(port: int) -> float:
    """Resident memory of the gunicorn listening on `port`: master and workers."""
    pids = [p.name for p in Path("/proc").iterdir() if p.name.isdigit()]
    tree: dict[str, str] = {}
    master = None
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        tree[pid] = stat.rsplit(")", 1)[1].split()[1]
        ours = "gunicorn" in cmdline and f"127.0.0.1:{port}" in cmdline
        if ours and master is None and tree[pid] == str(os.getpid()):
            master = pid
    family = {master} | {pid for pid, parent in tree.items() if parent == master}
    total = 0
    for pid in family:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def newest_message(env: dict[str, str], room_id: int) -> int:
    """The room's newest message: members resume from it, so that a run is not sent the
    messages of the runs before it."""
    from sqlalchemy import create_engine, text

    url = env["DATABASE_URL"].replace("postgres://", "postgresql+psycopg://", 1)
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            query = text("SELECT COALESCE(MAX(id), 0) FROM chat_messages WHERE room_id = :room")
            return connection.execute(query, {"room": room_id}).scalar_one()
    finally:
        engine.dispose()


@contextlib.contextmanager
def collector_paused():
    """This process's own garbage collector kept out of the timing: with thousands of sockets
    open a full collection here stops the clock-reading loop for 100-250 ms, as long as a slow
    server would take. What is open now is kept out of its reach until the block ends, even
    when a run fails (the next one is measured with the collector on again)."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


async def run(url: str, room_id: int | None, members: list[str], idle: list[str],
              sockets: int, messages: int, resume_from: int = 0,
              warmup: int = 0) -> dict[str, float]:  # fmt: skip
    """Open the sockets, send `messages` from rotating members, time every arrival."""
    port = int(url.rsplit(":", 1)[1])
    ws_url = url.replace("http://", "ws://") + "/ws"
    origin = url
    sent_at: dict[int, float] = {}
    latencies: list[float] = []
    expected = len(members) * messages
    done = asyncio.Event()
    gate = asyncio.Semaphore(64)

    async def open_one(cookie: str | None, member: bool):
        target = ws_url + ("?member=1" if member and room_id is None else "")
        headers = {"Cookie": cookie} if cookie else {}
        async with gate:
            ws = await connect(target, origin=origin, additional_headers=headers,
                               open_timeout=60, ping_interval=None, max_size=2**20)  # fmt: skip
        if member and room_id is not None:
            await ws.send(json.dumps({"resume": {str(room_id): resume_from}}))
        return ws

    async def listen(ws) -> None:
        async for frame in ws:
            now = time.perf_counter()
            found = MARK.search(frame)
            if found and int(found.group(1)) in sent_at:
                latencies.append(now - sent_at[int(found.group(1))])
                if len(latencies) >= expected:
                    done.set()

    began = time.perf_counter()
    member_sockets = await asyncio.gather(*(open_one(c, True) for c in members))
    idle_count = max(sockets - len(members), 0)
    # Round robin: each idle person holds at most SOCKETS_PER_PERSON sockets (seed).
    idle_cookies = [idle[n % len(idle)] if idle else None for n in range(idle_count)]
    idle_sockets = await asyncio.gather(*(open_one(c, False) for c in idle_cookies))
    opened = time.perf_counter() - began
    listeners = [asyncio.create_task(listen(ws)) for ws in member_sockets]
    with collector_paused():
        await asyncio.sleep(1.0)
        rss = server_rss_mb(port)

        senders = member_sockets[:20]  # each sends at most once a second: under the rate limit
        # Untimed first messages, the same for both apps: a fresh worker's first messages also
        # fill its caches (SQL statements compiled and prepared, the first of each query shape),
        # a cost paid once per worker, not per message.
        for seq in range(-warmup, 0):
            body = f"warm-up {seq}"
            payload = {"room": room_id, "body": body} if room_id is not None else {"body": body}
            await senders[seq % len(senders)].send(json.dumps(payload))
            await asyncio.sleep(0.1)
        for seq in range(messages):
            body = f"bench-{seq}- a question about the homework"
            payload = {"room": room_id, "body": body} if room_id is not None else {"body": body}
            sent_at[seq] = time.perf_counter()
            await senders[seq % len(senders)].send(json.dumps(payload))
            await asyncio.sleep(0.1)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), timeout=30)
    for task in listeners:
        task.cancel()
    await asyncio.gather(*(ws.close() for ws in member_sockets + idle_sockets),
                         return_exceptions=True)  # fmt: skip
    latencies.sort()
    received = len(latencies)
    return {
        "open_s": opened,
        "rss_mb": rss,
        "received": received,
        "expected": expected,
        "p50_ms": statistics.median(latencies) * 1000 if latencies else float("nan"),
        "p99_ms": latencies[int(received * 0.99) - 1] * 1000 if latencies else float("nan"),
    }


def print_result(worker: str, sockets: int, run_number: int, name: str, result: dict) -> None:
    print(f"{worker:8} {sockets:5} #{run_number} {name:16} opened in {result['open_s']:5.1f} s  "
          f"RSS {result['rss_mb']:7.1f} MiB  received {result['received']}/"
          f"{result['expected']}  p50 {result['p50_ms']:6.1f} ms  "
          f"p99 {result['p99_ms']:6.1f} ms", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", default="1000,5000", help="socket counts, comma-separated")
    parser.add_argument("--runs", type=int, default=3, help="runs of each socket count")
    parser.add_argument("--members", type=int, default=200)
    parser.add_argument("--messages", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5, help="untimed messages sent first")
    parser.add_argument("--workers", default="gevent")
    args = parser.parse_args()
    counts = [int(count) for count in args.sockets.split(",")]
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the server inherits it

    env = bench_environment()
    migrate(env)
    room_id, members, idle = seed(env, args.members, max(counts))
    database = env["DATABASE_URL"].split(":")[0]
    print(f"database: {database}; {args.sockets} sockets, {args.members} in the room, "
          f"{args.messages} messages after {args.warmup} untimed, {args.runs} runs; "
          f"open files limit {hard}")  # fmt: skip
    pairs = []  # (worker, sockets, run, bare, campus)
    for worker in args.workers.split(","):
        settings = {
            "GUNICORN_WORKER_CLASS": worker,
            "GUNICORN_THREADS": str(max(counts) + 100),
            "GUNICORN_WORKER_CONNECTIONS": str(max(counts) + 100),
            "GUNICORN_LOG_LEVEL": "error",
        }
        for sockets in counts:
            for run_number in range(1, args.runs + 1):
                results = {}
                for name, app, ready, cookies in (
                    ("bare flask-sock", "bare_chat:app", "/", None),
                    ("campus", "wsgi:app", "/healthz", (members, idle)),
                ):
                    server_env = env | settings
                    if name.startswith("bare"):
                        server_env["PYTHONPATH"] = str(Path(__file__).parent)
                    resume_from = newest_message(env, room_id) if cookies else 0
                    try:
                        with gunicorn(app, server_env, ready) as url:
                            result = asyncio.run(
                                run(url, room_id if cookies else None,
                                    cookies[0] if cookies else [None] * args.members,
                                    cookies[1] if cookies else [], sockets, args.messages,
                                    resume_from, args.warmup)
                            )  # fmt: skip
                    except Exception as error:  # a worker type that cannot hold the sockets
                        print(f"{worker:8} {sockets:5} #{run_number} {name:16} FAILED: "
                              f"{type(error).__name__}: {error}", flush=True)  # fmt: skip
                        continue
                    results[name] = result
                    print_result(worker, sockets, run_number, name, result)
                bare, campus = results.get("bare flask-sock"), results.get("campus")
                if bare and campus:
                    pairs.append((worker, sockets, run_number, bare, campus))
                    print(f"{worker:8} {sockets:5} #{run_number} campus p99 / bare p99 = "
                          f"{campus['p99_ms'] / bare['p99_ms']:.2f}x", flush=True)  # fmt: skip
    print("\nworker   sockets run  bare p50/p99 ms    campus p50/p99 ms   p99 ratio  goal")
    for worker, sockets, run_number, bare, campus in pairs:
        ratio = campus["p99_ms"] / bare["p99_ms"]
        met = ratio <= 1.5 and campus["p50_ms"] <= 10 and campus["received"] == campus["expected"]
        both = (f"{bare['p50_ms']:6.1f} / {bare['p99_ms']:6.1f}     "
                f"{campus['p50_ms']:6.1f} / {campus['p99_ms']:6.1f}")  # fmt: skip
        verdict = "met" if met else "NOT met"
        print(f"{worker:8} {sockets:7} {run_number:3}  {both}     {ratio:5.2f}x    {verdict}")


if __name__ == "__main__":
    main()
