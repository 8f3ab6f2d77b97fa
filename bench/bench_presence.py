"""Who has a chat room open, with REDIS_URL: the time of `watchers` (asked for each message
posted, to send its "seen by" count, and for each room page shown) for a room of --members
members, half of them with the room open in a tab, against one bare Redis round trip (PING)
in the same run. Prints medians and p95 of each round.

    REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python bench/bench_presence.py
        [--members 200] [--calls 500] [--rounds 3]

The people and sockets it announces are made up (ids from 900,000) and forgotten at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import server  # noqa: F401 - puts the project on sys.path

FIRST_ID = 900_000
ROOM = 900_001


def timed(action, calls: int) -> list[float]:
    times = []
    for _ in range(calls):
        began = time.perf_counter()
        action()
        times.append((time.perf_counter() - began) * 1000)
    return times


def summary(times: list[float]) -> str:
    ordered = sorted(times)
    p95 = ordered[round(0.95 * (len(ordered) - 1))]
    return f"median {statistics.median(times):6.3f} ms, p95 {p95:6.3f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=200)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    url = os.environ.get("REDIS_URL")
    if not url:
        raise SystemExit("set REDIS_URL: presence is in memory without Redis")

    from app.live.broker import RedisBroker

    broker = RedisBroker(url, lambda delivery: None, lambda: None)
    members = list(range(FIRST_ID, FIRST_ID + args.members))
    sockets = {user_id: f"bench{user_id}" for user_id in members}
    for n, user_id in enumerate(members):
        # Half the room has it open, the others another room; everyone has a tab somewhere.
        broker.watch(user_id, sockets[user_id], {ROOM} if n % 2 else {ROOM + 1})
    others = members[1:]
    try:
        assert len(broker.watchers(ROOM, others)) == args.members // 2
        print(f"{args.members} members, {args.members // 2} with the room open; "
              f"{args.calls} calls a round")  # fmt: skip
        for round_number in range(1, args.rounds + 1):
            ping = timed(broker.redis.ping, args.calls)
            watchers = timed(lambda: broker.watchers(ROOM, others), args.calls)
            ratio = statistics.median(watchers) / statistics.median(ping)
            print(f"round {round_number}: PING {summary(ping)} | watchers {summary(watchers)} "
                  f"({ratio:.1f}x PING)")  # fmt: skip
    finally:
        for user_id in members:
            broker.forget(user_id, sockets[user_id])


if __name__ == "__main__":
    main()
