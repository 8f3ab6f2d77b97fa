"""Live chat under load: N open sockets, 200 of them members of one course room; the time from
sending a message to its arrival at every member (p50, p99) and the server's memory, for each
gunicorn worker type, against a bare flask-sock app that only fans messages out, under the same
gunicorn settings in the same run.

Goal (issue "Real-time chat"): 5,000 sockets; Campus's full path (session, membership, store,
render, publish) at most 1.5x the bare app's p99, and p50 at most 10 ms with the message stored
on PostgreSQL (set DATABASE_URL).

    .venv/bin/python bench/bench_chat.py [--sockets 5000] [--members 200] [--messages 40]
        [--workers gthread,gevent]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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


async def run(url: str, room_id: int | None, members: list[str], idle: list[str],
              sockets: int, messages: int) -> dict[str, float]:  # fmt: skip
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
            await ws.send(json.dumps({"resume": {str(room_id): 0}}))
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
    await asyncio.sleep(1.0)
    rss = server_rss_mb(port)

    senders = member_sockets[:20]  # each sends at most once a second: under the rate limit
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=5000)
    parser.add_argument("--members", type=int, default=200)
    parser.add_argument("--messages", type=int, default=40)
    parser.add_argument("--workers", default="gthread,gevent")
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the server inherits it

    env = bench_environment()
    migrate(env)
    room_id, members, idle = seed(env, args.members, args.sockets)
    database = env["DATABASE_URL"].split(":")[0]
    print(f"database: {database}; {args.sockets} sockets, {args.members} in the room, "
          f"{args.messages} messages; open files limit {hard}")  # fmt: skip
    rows = []
    for worker in args.workers.split(","):
        settings = {
            "GUNICORN_WORKER_CLASS": worker,
            "GUNICORN_THREADS": str(args.sockets + 100),
            "GUNICORN_WORKER_CONNECTIONS": str(args.sockets + 100),
            "GUNICORN_LOG_LEVEL": "error",
        }
        for name, app, ready, cookies in (
            ("bare flask-sock", "bare_chat:app", "/", None),
            ("campus", "wsgi:app", "/healthz", (members, idle)),
        ):
            server_env = env | settings
            if name.startswith("bare"):
                server_env["PYTHONPATH"] = str(Path(__file__).parent)
            try:
                with gunicorn(app, server_env, ready) as url:
                    result = asyncio.run(
                        run(url, room_id if cookies else None,
                            cookies[0] if cookies else [None] * args.members,
                            cookies[1] if cookies else [], args.sockets, args.messages)
                    )  # fmt: skip
            except Exception as error:  # a worker type that cannot hold the sockets: say so
                print(f"{worker:8} {name:16} FAILED: {type(error).__name__}: {error}", flush=True)
                continue
            rows.append((worker, name, result))
            print(f"{worker:8} {name:16} opened in {result['open_s']:5.1f} s  "
                  f"RSS {result['rss_mb']:7.1f} MiB  received {result['received']}/"
                  f"{result['expected']}  p50 {result['p50_ms']:6.1f} ms  "
                  f"p99 {result['p99_ms']:6.1f} ms", flush=True)  # fmt: skip
    for worker in dict.fromkeys(w for w, _, _ in rows):
        bare = next((r for w, n, r in rows if w == worker and n.startswith("bare")), None)
        campus = next((r for w, n, r in rows if w == worker and n == "campus"), None)
        if bare and campus:
            ratio = campus["p99_ms"] / bare["p99_ms"]
            print(f"{worker}: campus p99 / bare p99 = {ratio:.2f}x")


if __name__ == "__main__":
    main()
