"""Slow clients against one gunicorn worker (worker.CampusWorker, production config, SQLite):
does a visitor still get GET /courses while one address opens thousands of connections whose
request bodies trickle in, with and without 5,000 open chat WebSockets?

A probe (its own address, 127.0.0.2) asks for /courses every 100 ms on a new connection:
alone first (the baseline), then during each attack. The attacker (127.0.0.1) opens its
connections as fast as it can, each sending the headers of POST /auth/login with a
Content-Length it never completes, then one byte every few seconds. The worker should refuse
at once (429) whatever one address holds beyond its cap, and cut the others off (408, closed)
at their body deadline. Two variants try to slip past the cap, each paced at 500 new
connections every 0.3 s: the slow POSTs carry `Upgrade: websocket` (upgrade-header), or each
connection first sends a WebSocket handshake without a session, reads its 401, and then sends
the slow POST (refused-handshake). Every second or less the bench counts the established
connections from the attacker's address to the server's port (/proc/net/tcp): at most the
cap should be held at once. Last, the plain attack while 5,000 idle WebSockets are open (500
people x 10 tabs, the app's limit, from 127.0.0.3-127.0.0.12); they must all stay open.

    .venv/bin/python bench/bench_slow_clients.py [--quick] [--attackers 6300] [--sockets 5000]
        [--length 100000] [--baseline-seconds 30] [--attack-seconds 40]
        [--phases baseline,attack,upgrade-header,refused-handshake,sockets]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import math
import multiprocessing
import os
import resource
import runpy
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from server import ROOT, bench_environment, gunicorn, migrate
from websockets.asyncio.client import connect
from websockets.protocol import State

PROBE_SOURCE = "127.0.0.2"
ATTACKER_SOURCE = "127.0.0.1"
SOCKET_SOURCES = [f"127.0.0.{n}" for n in range(3, 13)]
PROBE_EVERY = 0.1  # seconds between probe requests
PROBE_TIMEOUT = 10.0  # a probe request that takes longer counts as an error
TRICKLE_EVERY = 3.0  # the attacker sends one more byte of its body this often
CONNECTING_AT_ONCE = 512  # attacker connects in flight: below the listen backlog (2048)
HANDSHAKES_AT_ONCE = 64  # WebSocket handshakes in flight
PACE = (500, 0.3)  # the paced attacks: this many new connections, every this many seconds
HELD_EVERY = 0.5  # seconds between two counts of the attacker's established connections
# The phases, in the order they run: the plain attack, its two variants that try to slip
# past the per-address cap, then the plain attack with the sockets open.
PHASES = ("baseline", "attack", "upgrade-header", "refused-handshake", "sockets")
# werkzeug reads a form in pieces of at most 64 KiB: the worker's deadline for a body that
# never completes its first piece is grace + min(length, 64 KiB) / min_rate.
FORM_READ = 64 * 1024
# worker.py's defaults, passed explicitly so that what is printed is what runs.
WORKER_DEFAULTS = {
    "GUNICORN_BODY_TIMEOUT": "10",
    "GUNICORN_BODY_MIN_RATE": "10240",
    "GUNICORN_PENDING_PER_ADDRESS": "500",
}


# The probe: its own process, so that the attacker's event loop does not time it.


def probe(url: str, source: str, start_at: float, seconds: float, results) -> None:
    """GET /courses every PROBE_EVERY seconds for `seconds` from `start_at` (time.monotonic,
    the same clock in every process), each on a new connection (a new visitor); sends back
    the latencies of the 200s, the other outcomes by kind, and when each request began."""
    host, port = url.removeprefix("http://").split(":")
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    timeline: list[tuple[float, float, str]] = []  # (began, seconds, outcome)
    time.sleep(max(0.0, start_at - time.monotonic()))
    started = time.monotonic()
    due = started
    for _ in range(int(seconds / PROBE_EVERY) + 1):
        if due >= started + seconds:
            break
        time.sleep(max(0.0, due - time.monotonic()))
        began = time.monotonic()
        connection = http.client.HTTPConnection(
            host, int(port), timeout=PROBE_TIMEOUT, source_address=(source, 0)
        )
        try:
            connection.request("GET", "/courses", headers={"Connection": "close"})
            response = connection.getresponse()
            response.read()
            outcome = "200" if response.status == 200 else f"HTTP {response.status}"
        except (OSError, http.client.HTTPException) as error:
            outcome = type(error).__name__
        finally:
            connection.close()
        took = time.monotonic() - began
        timeline.append((began, took, outcome))
        if outcome == "200":
            latencies.append(took)
        else:
            errors[outcome] += 1
        # Late (a slow answer): the next one goes at once, without catching up the missed ones.
        due = max(due + PROBE_EVERY, time.monotonic())
    results.send({"latencies": latencies, "errors": dict(errors), "timeline": timeline})
    results.close()


async def run_probe(url: str, start_at: float, seconds: float) -> dict:
    context = multiprocessing.get_context("spawn")
    receiving, sending = context.Pipe(duplex=False)
    process = context.Process(target=probe, args=(url, PROBE_SOURCE, start_at, seconds, sending))
    process.start()
    sending.close()
    try:
        wait = start_at - time.monotonic() + seconds + PROBE_TIMEOUT + 30
        ready = await asyncio.to_thread(receiving.poll, wait)
        if not ready:
            raise RuntimeError("the probe did not report")
        return receiving.recv()
    finally:
        await asyncio.to_thread(process.join, 10)
        if process.is_alive():
            process.kill()


def latency_summary(result: dict, phase_start: float) -> dict:
    """Percentiles of the 200s; the slowest requests (any outcome) by when they began."""
    values = sorted(result["latencies"])
    slowest = sorted(result["timeline"], key=lambda item: item[1], reverse=True)[:5]

    def rank(share: float) -> float:
        return values[max(0, math.ceil(len(values) * share) - 1)] * 1000 if values else math.nan

    return {
        "ok": len(values),
        "errors": sum(result["errors"].values()),
        "error_kinds": result["errors"],
        "p50": statistics.median(values) * 1000 if values else math.nan,
        "p95": rank(0.95),
        "p99": rank(0.99),
        "max": values[-1] * 1000 if values else math.nan,
        "slowest": [(began - phase_start, took * 1000, what) for began, took, what in slowest],
    }


# The server's processes, watched from /proc.


def children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                found.append(int(entry.name))
    return found


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return math.nan


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def open_files(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


@dataclass
class Server:
    master: int
    worker: int

    @classmethod
    def find(cls, port: int) -> Server:
        for pid in children(os.getpid()):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            if "gunicorn" in cmdline and f"127.0.0.1:{port}" in cmdline:
                workers = children(pid)
                if len(workers) == 1:
                    return cls(pid, workers[0])
        raise RuntimeError("gunicorn's master and its one worker were not found")

    def rss(self) -> float:
        return rss_mib(self.master) + rss_mib(self.worker)

    def worker_restarted(self) -> bool:
        return children(self.master) != [self.worker]


def proc_address(ip: str) -> str:
    """An IPv4 address as /proc/net/tcp writes it: the 32-bit number in the host's order."""
    return f"{struct.unpack('=I', socket.inet_aton(ip))[0]:08X}"


def attacker_connections(port: int) -> tuple[float, int, int]:
    """When the count began, and the established connections from ATTACKER_SOURCE to the
    server's port, seen from the server's side: all of them, and those the worker has
    accepted (a connection still in the listen queue has no socket, so its inode is 0). The
    table is read in pieces while it changes, so a connection can be listed twice: each
    counts once."""
    began = time.monotonic()
    local_end = f":{port:04X}"
    remote_start = proc_address(ATTACKER_SOURCE) + ":"
    seen: dict[str, bool] = {}  # remote address -> accepted
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            # sl, local address, remote address, state, queues, timer, retransmits, uid,
            # timeout, inode
            fields = line.split(None, 10)
            if (
                fields[3] == "01"  # ESTABLISHED
                and fields[1].endswith(local_end)
                and fields[2].startswith(remote_start)
            ):
                seen[fields[2]] = seen.get(fields[2], False) or fields[9] != "0"
    return began, len(seen), sum(seen.values())


def listen_overflows() -> int:
    """The kernel's count of connections dropped because a listen queue was full (TcpExt
    ListenOverflows): for the whole machine, other programs' queues included."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            return int(dict(zip(names.split(), values.split(), strict=True))["ListenOverflows"])
    return -1


@dataclass
class Watch:
    """Samples of the server's memory and the worker's open files during a phase, and counts
    of the attacker's established connections."""

    server: Server
    port: int
    rss: list[float] = field(default_factory=list)
    files: list[int] = field(default_factory=list)
    held: list[tuple[float, int, int]] = field(default_factory=list)  # (when, all, accepted)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.rss.append(self.server.rss())
            self.files.append(open_files(self.server.worker))
            self.held.append(await asyncio.to_thread(attacker_connections, self.port))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), HELD_EVERY)


# The attacker.


def status_of(data: bytes) -> int:
    return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0


@dataclass
class Attempt:
    connected: float | None = None
    posted: float | None = None  # the slow POST's headers were sent
    answered: float | None = None  # the first byte of a response to the slow POST
    closed: float | None = None  # the server ended the connection (end of file or reset)
    first: bytes = b""  # the answer to the handshake sent before the slow POST, if any
    received: bytes = b""
    error: str = ""

    @property
    def status(self) -> int:
        return status_of(self.received)

    @property
    def refused(self) -> bool:
        """The worker's own 429, sent before reading the request."""
        answer = self.first or self.received
        return status_of(answer) == 429 and b"Too many connections" in answer


async def read_response(reader: asyncio.StreamReader) -> bytes:
    """One response with a Content-Length (the app's answer to a refused handshake, or the
    worker's 429), read whole, leaving the connection open."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head + await reader.readexactly(length)


async def attack_one(
    port: int, head: bytes, until: float, gate: asyncio.Semaphore, first: bytes = b""
) -> Attempt:
    """One connection: `first` (a request whose whole answer is read), then `head`, the
    headers of the slow POST, then a byte every TRICKLE_EVERY seconds until the server ends
    the connection or `until`."""
    attempt = Attempt()
    async with gate:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port, local_addr=(ATTACKER_SOURCE, 0)), 30
            )
        except (OSError, TimeoutError) as error:
            attempt.error = f"connect: {type(error).__name__}"
            return attempt
    attempt.connected = time.monotonic()
    received = bytearray()

    async def read_to_end() -> None:
        try:
            while chunk := await reader.read(65536):
                if attempt.answered is None:
                    attempt.answered = time.monotonic()
                received.extend(chunk)
        except OSError as error:
            attempt.error = type(error).__name__
        attempt.closed = time.monotonic()

    reading = None
    try:
        if first:
            writer.write(first)
            try:
                left = max(0.1, until - time.monotonic())
                attempt.first = await asyncio.wait_for(read_response(reader), left)
            except (OSError, TimeoutError, asyncio.IncompleteReadError) as error:
                attempt.error = f"first request: {type(error).__name__}"
                attempt.closed = time.monotonic()
                return attempt
            if attempt.refused:  # the worker's 429 comes with its close
                reading = asyncio.create_task(read_to_end())
                await asyncio.wait({reading}, timeout=max(0.1, until - time.monotonic()))
                return attempt
        reading = asyncio.create_task(read_to_end())
        writer.write(head)
        attempt.posted = time.monotonic()
        while not reading.done() and (left := until - time.monotonic()) > 0:
            await asyncio.wait({reading}, timeout=min(TRICKLE_EVERY, left))
            if not reading.done() and not writer.transport.is_closing():
                writer.write(b"a")  # one more byte of the login field
    finally:
        if reading is not None and not reading.done():
            reading.cancel()
        writer.transport.abort()
        attempt.received = bytes(received)
    return attempt


def slow_post(port: int, length: int, upgrade: bool = False) -> bytes:
    """The headers of a sign-in whose body will trickle in, the start of that body; with
    `upgrade`, naming `Upgrade: websocket` (without `Connection: Upgrade`)."""
    return (
        f"POST /auth/login HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        + ("Upgrade: websocket\r\n" if upgrade else "")
        + "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {length}\r\n\r\nlogin="
    ).encode()


def refused_handshake(port: int) -> bytes:
    """A WebSocket handshake for the chat without a session: the app answers 401."""
    return (
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        f"Sec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:{port}\r\n\r\n"
    ).encode()


# Each attack: what it is called, how it is described, and whether it is paced.
ATTACKS = {
    "attack": ("attack", "slow POSTs, as fast as it can", False),
    "upgrade-header": (
        "attack, Upgrade header",
        "slow POSTs naming Upgrade: websocket, {pace}",
        True,
    ),
    "refused-handshake": (
        "attack, refused handshake first",
        "on each connection GET /ws without a session (401), then the slow POST, {pace}",
        True,
    ),
}


async def attack(port: int, kind: str, count: int, length: int, seconds: float) -> list[Attempt]:
    """`count` connections of the `kind` of attack (ATTACKS) for at most `seconds`."""
    head = slow_post(port, length, upgrade=kind == "upgrade-header")
    first = refused_handshake(port) if kind == "refused-handshake" else b""
    paced = ATTACKS[kind][2]
    started = time.monotonic()
    until = started + seconds
    gate = asyncio.Semaphore(CONNECTING_AT_ONCE)
    tasks = []
    for n in range(count):
        if paced and n and n % PACE[0] == 0:
            await asyncio.sleep(max(0.0, started + n // PACE[0] * PACE[1] - time.monotonic()))
        tasks.append(asyncio.create_task(attack_one(port, head, until, gate, first)))
    return await asyncio.gather(*tasks)


def last_refusal(attempts: list[Attempt], began: float) -> float:
    """When the last of the refused connections was closed (its 429 read), or `began`."""
    return max((a.closed for a in attempts if a.refused and a.closed is not None), default=began)


def attack_summary(attempts: list[Attempt], began: float) -> dict:
    """What became of the attacker's connections; times of the cut-offs from the slow POST's
    headers being sent (the worker's deadline starts with that request) and from `began`."""
    connected = [a for a in attempts if a.connected is not None]
    refused = [a for a in connected if a.refused]
    accepted = [a for a in connected if not a.refused]
    cut = [a for a in accepted if a.closed is not None]
    outcomes = Counter(
        f"HTTP {a.status}" if a.status else (a.error or "closed, no answer") for a in cut
    )
    first_answers = Counter(f"HTTP {status_of(a.first)}" for a in accepted if a.first)
    cut_after = sorted(a.closed - a.posted for a in cut if a.posted is not None)
    cut_at = sorted(a.closed - began for a in cut if a.posted is not None)
    posted_at = sorted(a.posted - began for a in accepted if a.posted is not None)
    refused_after = sorted(a.closed - a.connected for a in refused if a.closed is not None)
    return {
        "attempts": len(attempts),
        "connect_errors": Counter(a.error for a in attempts if a.connected is None),
        "refused": len(refused),
        "refused_median_ms": statistics.median(refused_after) * 1000 if refused_after else 0,
        "refused_max_ms": refused_after[-1] * 1000 if refused_after else 0,
        "accepted": len(accepted),
        "first_answers": first_answers,
        "cut": len(cut),
        "outcomes": outcomes,
        "still_open": len(accepted) - len(cut),
        "cut_min": cut_after[0] if cut_after else math.nan,
        "cut_median": statistics.median(cut_after) if cut_after else math.nan,
        "cut_max": cut_after[-1] if cut_after else math.nan,
        "posted_first_at": posted_at[0] if posted_at else math.nan,
        "posted_last_at": posted_at[-1] if posted_at else math.nan,
        "cut_first_at": cut_at[0] if cut_at else math.nan,
        "cut_last_at": cut_at[-1] if cut_at else math.nan,
        "answer_to_close_max": max(
            (a.closed - a.answered for a in cut if a.answered is not None), default=math.nan
        ),
    }


# The chat sockets.


async def open_sockets(url: str, cookies: list[str], count: int, per_person: int) -> list:
    """`count` idle sockets, `per_person` for each person, each person from one of
    SOCKET_SOURCES; returns the open ones (and raises nothing for a refused handshake)."""
    ws_url = url.replace("http://", "ws://") + "/ws"
    gate = asyncio.Semaphore(HANDSHAKES_AT_ONCE)
    refused: Counter[str] = Counter()

    async def open_one(n: int):
        person = n // per_person
        async with gate:
            try:
                return await connect(
                    ws_url, origin=url, additional_headers={"Cookie": cookies[person]},
                    open_timeout=60, ping_interval=None, max_size=2**20,
                    local_addr=(SOCKET_SOURCES[person % len(SOCKET_SOURCES)], 0),
                )  # fmt: skip
            except Exception as error:
                refused[f"{type(error).__name__}: {error}"[:80]] += 1
                return None

    opened = await asyncio.gather(*(open_one(n) for n in range(count)))
    if refused:
        print(f"  handshakes that failed: {dict(refused)}", flush=True)
    return [ws for ws in opened if ws is not None]


async def still_answering(sockets: list, timeout: float) -> int:
    """How many sockets answer a ping within `timeout` seconds."""
    gate = asyncio.Semaphore(500)

    async def ping(ws) -> bool:
        async with gate:
            try:
                pong = await ws.ping()
                await asyncio.wait_for(pong, timeout)
                return True
            except Exception:
                return False

    return sum(await asyncio.gather(*(ping(ws) for ws in sockets)))


# Setting up.


def seed(env: dict[str, str], people: int) -> list[str]:
    """The demo data (its published courses make /courses a real page) and `people` students
    with session cookies signed by the server's key, so that no socket needs a sign-in."""
    flask = [sys.executable, "-m", "flask", "--app", "wsgi", "seed-demo"]
    subprocess.run(flask, cwd=ROOT, env=env, check=True, capture_output=True)
    from app import create_app
    from app.extensions import db
    from app.models import User

    app = create_app("production")
    with app.app_context():
        users = [
            User(username=f"tab{n}", email=f"tab{n}@bench.example", full_name=f"Tab {n}",
                 role="student", password_hash="-", bio="")
            for n in range(people)
        ]  # fmt: skip
        db.session.add_all(users)
        db.session.commit()
        serializer = app.session_interface.get_signing_serializer(app)
        sessions = ({"_user_id": user.get_id(), "_fresh": True} for user in users)
        return [f"session={serializer.dumps(session)}" for session in sessions]


def fmt_ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:,.1f}"


def load_average() -> str:
    return "load average " + " ".join(f"{value:.1f}" for value in os.getloadavg())


def print_probe(name: str, summary: dict) -> None:
    kinds = ", ".join(f"{k} {v}" for k, v in summary["error_kinds"].items()) or "none"
    slowest = ", ".join(f"{ms:,.0f} ms at {at:.1f} s" + ("" if what == "200" else f" ({what})")
                        for at, ms, what in summary["slowest"])  # fmt: skip
    print(f"  probe ({name}): {summary['ok']} answered 200, p50 {fmt_ms(summary['p50'])} ms, "
          f"p95 {fmt_ms(summary['p95'])} ms, p99 {fmt_ms(summary['p99'])} ms, "
          f"max {fmt_ms(summary['max'])} ms; errors: {kinds}; slowest: {slowest}",
          flush=True)  # fmt: skip


def print_attack(summary: dict, expected: float) -> None:
    errors = dict(summary["connect_errors"]) or "none"
    print(f"  attacker: {summary['attempts']} connections, connect errors {errors}; "
          f"refused at once (429) {summary['refused']} (median "
          f"{summary['refused_median_ms']:.1f} ms, max {summary['refused_max_ms']:.1f} ms to "
          f"close); accepted {summary['accepted']}", flush=True)  # fmt: skip
    if summary["first_answers"]:
        print(f"  answers to the accepted connections' handshakes: "
              f"{dict(summary['first_answers'])}", flush=True)  # fmt: skip
    print(f"  accepted: {summary['cut']} cut off by the server ({dict(summary['outcomes'])}), "
          f"{summary['still_open']} still open when the phase ended; cut off after "
          f"min {summary['cut_min']:.2f} / median {summary['cut_median']:.2f} / max "
          f"{summary['cut_max']:.2f} s from the slow POST (deadline {expected:.2f} s), "
          f"{summary['cut_first_at']:.1f}-{summary['cut_last_at']:.1f} s into the phase (the "
          f"POSTs sent {summary['posted_first_at']:.1f}-{summary['posted_last_at']:.1f} s); "
          f"longest answer-to-close {summary['answer_to_close_max']:.2f} s",
          flush=True)  # fmt: skip


def held_summary(samples: list[tuple[float, int, int]], began: float, settled: float) -> dict:
    """The most established connections from the attacker at once, when, and how many of
    those the worker had accepted (the others were still in the listen queue); and the most
    after `settled`, once the last 429 had arrived: during the burst of connects some of the
    accepted ones are about to be refused, afterwards every one left is held by the worker."""
    if not samples:
        samples = [(began, 0, 0)]
    at, held, accepted = max(samples, key=lambda sample: (sample[1], sample[2]))
    after = [sample for sample in samples if sample[0] > settled]
    return {
        "held_peak": held,
        "held_peak_accepted": accepted,
        "held_peak_at": at - began,
        "accepted_peak": max(sample[2] for sample in samples),
        "settled_at": settled - began,
        "settled_peak": max((sample[1] for sample in after), default=0),
        "settled_samples": len(after),
        "held_series": [(when - began, count, accepted) for when, count, accepted in samples],
    }


async def attack_phase(url: str, server: Server, args, expected: float, kind: str) -> dict:
    port = int(url.rsplit(":", 1)[1])
    stop = asyncio.Event()
    watch = Watch(server, port)
    rss_before, cpu_before = server.rss(), cpu_seconds(server.worker)
    overflows_before = listen_overflows()
    began = time.monotonic() + 1.5  # the probe's process is started by then
    probing = asyncio.create_task(run_probe(url, began, args.attack_seconds))
    await asyncio.sleep(began - time.monotonic())
    watching = asyncio.create_task(watch.run(stop))
    attempts = await attack(port, kind, args.attackers, args.length, args.attack_seconds)
    probed = await probing
    opening = [a.connected for a in attempts if a.connected is not None]
    stop.set()
    await watching
    cpu = cpu_seconds(server.worker) - cpu_before
    overflows = listen_overflows() - overflows_before
    await asyncio.sleep(2)  # the server sees the attacker's closes
    result = {
        "probe": latency_summary(probed, began),
        "attack": attack_summary(attempts, began),
        "rss_before": rss_before,
        "rss_peak": max(watch.rss),
        "rss_after": server.rss(),
        "files_peak": max(watch.files),
        "files_after": open_files(server.worker),
        "opened_in": (max(opening) - began) if opening else math.nan,
        "cpu": cpu,
        "listen_overflows": overflows,
    } | held_summary(watch.held, began, last_refusal(attempts, began))
    left = attacker_connections(port)[1]
    print_probe("attack", result["probe"])
    print_attack(result["attack"], expected)
    series = " ".join(
        f"{at:.0f}s:{count}" + (f"({accepted})" if accepted != count else "")
        for at, count, accepted in result["held_series"][::2]
    )
    print(f"  attacker's established connections (counted every {HELD_EVERY:g} s): at most "
          f"{result['held_peak']} at once, at {result['held_peak_at']:.1f} s "
          f"({result['held_peak_accepted']} of them accepted by the worker, the rest in the "
          f"listen queue; accepted at most {result['accepted_peak']}); after the last 429 "
          f"arrived ({result['settled_at']:.1f} s), at most {result['settled_peak']} "
          f"({result['settled_samples']} counts); {left} left 2 s after the phase; by the "
          f"second, all (accepted by the worker, if fewer): {series}", flush=True)  # fmt: skip
    print(f"  all attacker connections made within {result['opened_in']:.1f} s; worker CPU "
          f"{cpu:.1f} s in the phase; server RSS {rss_before:.0f} MiB before, "
          f"{result['rss_peak']:.0f} MiB at most, {result['rss_after']:.0f} MiB after; worker's "
          f"open files at most {result['files_peak']}, {result['files_after']} after; "
          f"connects dropped on a full listen queue (the machine's count) {overflows}",
          flush=True)  # fmt: skip
    return result


async def run(url: str, cookies: list[str], args, expected: float) -> list[tuple[str, dict]]:
    port = int(url.rsplit(":", 1)[1])
    server = Server.find(port)
    rows: list[tuple[str, dict]] = []
    pace = f"{PACE[0]} new connections every {PACE[1]:g} s"

    if "baseline" in args.phases:
        print(f"baseline: probe alone for {args.baseline_seconds:.0f} s; {load_average()}",
              flush=True)  # fmt: skip
        rss = server.rss()
        began = time.monotonic() + 1.5
        baseline = latency_summary(await run_probe(url, began, args.baseline_seconds), began)
        print_probe("baseline", baseline)
        rows.append(("baseline", {"probe": baseline, "rss_before": rss, "rss_peak": server.rss()}))

    for kind, (name, description, _paced) in ATTACKS.items():
        if kind not in args.phases:
            continue
        print(f"{name}: {args.attackers} connections from {ATTACKER_SOURCE}, "
              f"{description.format(pace=pace)}; probe for {args.attack_seconds:.0f} s; "
              f"{load_average()}", flush=True)  # fmt: skip
        rows.append((name, await attack_phase(url, server, args, expected, kind)))

    if "sockets" in args.phases:
        print(f"sockets: {args.sockets} WebSockets open ({args.sockets // args.per_person} "
              f"people x {args.per_person}, from {SOCKET_SOURCES[0]}-{SOCKET_SOURCES[-1]}), "
              f"then the plain attack; {load_average()}", flush=True)  # fmt: skip
        began = time.monotonic()
        sockets = await open_sockets(url, cookies, args.sockets, args.per_person)
        print(f"  {len(sockets)} sockets open in {time.monotonic() - began:.1f} s; server RSS "
              f"{server.rss():.0f} MiB", flush=True)  # fmt: skip
        await asyncio.sleep(1)
        try:
            result = await attack_phase(url, server, args, expected, "attack")
            closed = sum(ws.state is not State.OPEN for ws in sockets)
            answering = await still_answering(sockets, 20)
            result |= {"sockets": len(sockets), "closed": closed, "answering": answering}
            print(f"  sockets after the attack: {closed} of {len(sockets)} closed, {answering} "
                  "answered a ping", flush=True)  # fmt: skip
            rows.append((f"attack + {len(sockets):,} sockets", result))
        finally:
            await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    if server.worker_restarted():
        print("  THE WORKER WAS RESTARTED during the run", flush=True)
    return rows


def print_table(rows: list[tuple[str, dict]], expected: float) -> None:
    print()
    print(f"{'phase':<34}{'probe p50':>10}{'p95':>9}{'p99':>9}{'max':>9}{'errors':>8}"
          f"{'refused':>9}{'accepted':>9}{'408':>6}{'cut off min/med/max s':>24}"
          f"{'held':>6}{'burst':>7}{'RSS MiB':>14}{'sockets':>14}")  # fmt: skip
    for name, row in rows:
        probe_row = row["probe"]
        line = (f"{name:<34}{fmt_ms(probe_row['p50']):>10}{fmt_ms(probe_row['p95']):>9}"
                f"{fmt_ms(probe_row['p99']):>9}{fmt_ms(probe_row['max']):>9}"
                f"{probe_row['errors']:>8}")  # fmt: skip
        if "attack" in row:
            a = row["attack"]
            cut = f"{a['cut_min']:.1f} / {a['cut_median']:.1f} / {a['cut_max']:.1f}"
            line += (f"{a['refused']:>9}{a['accepted']:>9}{a['outcomes'].get('HTTP 408', 0):>6}"
                     f"{cut:>24}{row['settled_peak']:>6}{row['held_peak']:>7}"
                     f"{row['rss_before']:>6.0f}->{row['rss_peak']:<5.0f}")  # fmt: skip
        else:
            line += f"{'':>9}{'':>9}{'':>6}{'':>24}{'':>13}{row['rss_before']:>6.0f}{'':>8}"
        if "sockets" in row:
            line += f"{row['sockets'] - row['closed']:>7}/{row['sockets']} open"
        print(line)
    print(f"(probe latencies in ms; cut off: seconds from the slow POST to the close, against "
          f"a deadline of {expected:.1f} s; held: the most established connections from "
          f"{ATTACKER_SOURCE} at once after the last 429 arrived; burst: the most at any time, "
          f"listen queue and connections about to be refused included)")  # fmt: skip


def phase_list(value: str) -> list[str]:
    phases = [name.strip() for name in value.split(",") if name.strip()]
    unknown = sorted(set(phases) - set(PHASES))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown phases {unknown}; known: {', '.join(PHASES)}")
    return phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    smoke = "a smoke run: 1,000 attackers, 500 sockets, phases of 15-20 s"
    parser.add_argument("--quick", action="store_true", help=smoke)
    parser.add_argument("--attackers", type=int)
    parser.add_argument("--sockets", type=int)
    parser.add_argument("--length", type=int, help="the attacker's announced Content-Length")
    parser.add_argument("--baseline-seconds", type=float)
    parser.add_argument("--attack-seconds", type=float)
    phases = f"which phases to run, comma-separated (all: {','.join(PHASES)})"
    parser.add_argument("--phases", type=phase_list, default=list(PHASES), help=phases)
    args = parser.parse_args()
    full = {"attackers": 6300, "sockets": 5000, "length": 100_000, "baseline_seconds": 30,
            "attack_seconds": 40}  # fmt: skip
    quick = {"attackers": 1000, "sockets": 500, "length": 20_000, "baseline_seconds": 15,
             "attack_seconds": 20}  # fmt: skip
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the server inherits it
    workdir = Path(tempfile.mkdtemp(prefix="campus-slow-"))
    worker_settings = {name: os.environ.get(name) or value
                       for name, value in WORKER_DEFAULTS.items()}  # fmt: skip
    env = bench_environment(
        SEARCH_INDEX_DIR=str(workdir / "search"),
        UPLOAD_DIR=str(workdir / "uploads"),
        GUNICORN_WORKER_CLASS="worker.CampusWorker",
        **worker_settings,
    )
    env.pop("TRUSTED_PROXIES", None)  # the per-address cap is off behind a proxy
    os.environ.update(env)  # before config is imported: it reads DATABASE_URL once
    from config import Config

    args.per_person = Config.SOCKETS_PER_PERSON
    people = math.ceil(args.sockets / args.per_person) if "sockets" in args.phases else 0
    migrate(env)
    cookies = seed(env, people)

    conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    grace = float(worker_settings["GUNICORN_BODY_TIMEOUT"])
    min_rate = float(worker_settings["GUNICORN_BODY_MIN_RATE"])
    expected = grace + min(args.length, FORM_READ) / min_rate
    whole = grace + args.length / min_rate
    print(f"server: gunicorn, {conf['workers']} worker ({conf['worker_class']}), "
          f"worker_connections {conf['worker_connections']}, keepalive {conf['keepalive']} s; "
          f"production config, SQLite, the demo courses; open files limit {hard}")  # fmt: skip
    print(f"worker limits: pending connections per address "
          f"{worker_settings['GUNICORN_PENDING_PER_ADDRESS']}, body grace {grace:g} s, "
          f"body min rate {min_rate:g} bytes/s")  # fmt: skip
    print(f"attack: Content-Length {args.length}, a byte every {TRICKLE_EVERY:g} s; werkzeug "
          f"reads the form in pieces of {FORM_READ} bytes, so the deadline is {grace:g} + "
          f"{min(args.length, FORM_READ)} / {min_rate:g} = {expected:.2f} s after the "
          f"request" + (f" (the whole announced body would allow {whole:.2f} s)"
                        if whole != expected else ""), flush=True)  # fmt: skip
    if expected + 3 > args.attack_seconds:
        print(f"warning: the attack phase ({args.attack_seconds:g} s) ends before the deadline")

    with gunicorn("wsgi:app", env, "/courses") as url:
        rows = asyncio.run(run(url, cookies, args, expected))
    print_table(rows, expected)
    print(load_average())


if __name__ == "__main__":
    main()
