"""The broker: carries a fragment to every open socket of the people it is for, and keeps track
of who is watching which room. In one process it is memory; with REDIS_URL it is Redis, so
that several gunicorn workers and servers share rooms."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

# Followed by the Redis database number: pub/sub channels are shared by every database of a
# server, so two Campus installs on one Redis (db 0 and db 1) would otherwise close and fill
# each other's sockets.
CHANNEL = "campus:live:{db}"
PRESENCE_KEY = "campus:presence:{user_id}"
# Who has a room open: "user_id:socket_id" members scored by when their presence lapses, so
# that a message's "seen by" is one read of the room's set, not one of each member's hash.
ROOM_WATCHERS_KEY = "campus:watching:{room}"
# A socket refreshes its presence at every keepalive; one silent for this long is gone.
PRESENCE_TTL = 90


@dataclass(frozen=True)
class Delivery:
    """One fragment for every socket of `user_ids`. `room` and `message_id` say which chat
    message it carries, if any. `close` instead closes those sockets (their sessions ended)."""

    user_ids: tuple[int, ...]
    html: str
    room: int | None = None
    message_id: int | None = None
    close: bool = False

    def to_json(self) -> str:
        return json.dumps(
            [list(self.user_ids), self.html, self.room, self.message_id, self.close],
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> Delivery:
        user_ids, html, room, message_id, close = json.loads(raw)
        return cls(tuple(user_ids), html, room, message_id, close)


Deliver = Callable[[Delivery], None]
# Called when deliveries from other processes may have been missed (the Redis listener was
# cut off): this process's sockets are closed so that their tabs reconnect and catch up.
Missed = Callable[[], None]


@dataclass
class LocalBroker:
    """Everything in this process: the default, for `make run` and one gunicorn worker."""

    deliver: Deliver
    _watching: dict[int, dict[str, set[int]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def publish(self, delivery: Delivery) -> None:
        self.deliver(delivery)

    def start(self) -> None:
        pass

    def claim(self, user_id: int, socket_id: str, limit: int) -> bool:
        """Count a socket about to open; False (and not counted) when the person already
        holds `limit` of them."""
        with self._lock:
            sockets = self._watching.setdefault(user_id, {})
            if len(sockets) >= limit:
                return False
            sockets[socket_id] = set()
            return True

    def watch(self, user_id: int, socket_id: str, rooms: Iterable[int]) -> None:
        with self._lock:
            self._watching.setdefault(user_id, {})[socket_id] = set(rooms)

    def forget(self, user_id: int, socket_id: str) -> None:
        with self._lock:
            sockets = self._watching.get(user_id, {})
            sockets.pop(socket_id, None)
            if not sockets:
                self._watching.pop(user_id, None)

    def watchers(self, room: int, user_ids: Iterable[int]) -> set[int]:
        """Those of `user_ids` with `room` open in some tab."""
        with self._lock:
            return {
                user_id
                for user_id in user_ids
                if any(room in rooms for rooms in self._watching.get(user_id, {}).values())
            }

    def health(self) -> str:
        return "ok"


class RedisBroker:
    """Redis pub/sub between processes, presence in one Redis hash per user. If Redis goes
    away, deliveries still reach this process's sockets and the listener reconnects; nothing is
    lost, because messages are stored before they are published and tabs catch up on
    reconnect."""

    def __init__(self, url: str, deliver: Deliver, missed: Missed) -> None:
        import redis

        self.deliver = deliver
        self.missed = missed
        # Named, so that `CLIENT LIST` in Redis shows which connections are whose.
        self.name = f"campus-live-{socket.gethostname()}-{os.getpid()}"
        self.redis = redis.Redis.from_url(
            url, socket_timeout=5, socket_connect_timeout=2, client_name=self.name
        )
        self.channel = CHANNEL.format(db=self.redis.connection_pool.connection_kwargs.get("db", 0))
        self._listener: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._subscribed = threading.Event()
        self.error = ""
        # The rooms each socket of this process was last announced in, to leave them.
        self._announced: dict[str, frozenset[int]] = {}

    def start(self) -> None:
        """Listen on the channel from now on (the first socket of this process calls it)."""
        with self._start_lock:
            if self._listener is None:
                self._listener = threading.Thread(
                    target=self._listen, name="campus-live-listener", daemon=True
                )
                self._listener.start()
        self._subscribed.wait(timeout=2)

    def publish(self, delivery: Delivery) -> None:
        import redis

        try:
            self.redis.publish(self.channel, delivery.to_json())
        except redis.RedisError as error:
            # Other processes miss this one; their listeners are cut off too, and make their
            # tabs catch up once they listen again.
            log.warning("live broker: publishing through Redis failed (%s); local only", error)
            self.deliver(delivery)

    def _listen(self) -> None:
        import redis

        pause, first = 0.2, True
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.channel)
                self.error = ""
                pause = 0.2
                if not first:
                    log.info("live broker: listening again; tabs reconnect to catch up")
                    self.missed()
                first = False
                self._subscribed.set()
                while True:
                    # A timeout lets the loop notice a dead connection through the ping below.
                    message = pubsub.get_message(timeout=15)
                    if message is None:
                        pubsub.ping()
                        continue
                    if message["type"] != "message":
                        continue  # the answer to our ping
                    try:
                        self.deliver(Delivery.from_json(message["data"]))
                    except Exception:
                        log.exception("live broker: a delivery failed")
            except redis.RedisError as error:
                self.error = "unreachable"
                log.warning("live broker: Redis listener lost (%s); retrying", error)
            except Exception:
                self.error = "listener failed"
                log.exception("live broker: the Redis listener failed; restarting it")
            finally:
                with contextlib.suppress(redis.RedisError):
                    pubsub.close()
            time.sleep(pause)
            pause = min(pause * 2, 5.0)

    def watch(self, user_id: int, socket_id: str, rooms: Iterable[int]) -> None:
        """The socket is alive (its person's count of sockets) and shows `rooms`, until
        PRESENCE_TTL from now unless renewed."""
        import redis

        rooms = frozenset(rooms)
        expires = time.time() + PRESENCE_TTL
        value = json.dumps([expires, sorted(rooms)])
        key = PRESENCE_KEY.format(user_id=user_id)
        member = f"{user_id}:{socket_id}"
        left = self._announced.get(socket_id, frozenset()) - rooms
        try:
            with self.redis.pipeline() as pipe:
                pipe.hset(key, socket_id, value).expire(key, PRESENCE_TTL)
                for room in rooms:
                    room_key = ROOM_WATCHERS_KEY.format(room=room)
                    pipe.zadd(room_key, {member: expires}).expire(room_key, PRESENCE_TTL)
                for room in left:
                    pipe.zrem(ROOM_WATCHERS_KEY.format(room=room), member)
                pipe.execute()
        except redis.RedisError as error:
            log.warning("live broker: presence not saved (%s)", error)
        else:
            self._announced[socket_id] = rooms

    def claim(self, user_id: int, socket_id: str, limit: int) -> bool:
        """Count a socket about to open, on every worker and server together; False (and not
        counted) when the person already holds `limit` live ones. Two claims at the same moment
        may both be refused, never both let past the limit."""
        import redis

        key = PRESENCE_KEY.format(user_id=user_id)
        now = time.time()
        value = json.dumps([now + PRESENCE_TTL, []])
        try:
            with self.redis.pipeline() as pipe:
                pipe.hset(key, socket_id, value).expire(key, PRESENCE_TTL).hgetall(key)
                *_, sockets = pipe.execute()
            gone = [sid for sid, raw in sockets.items() if json.loads(raw)[0] <= now]
            if gone:
                self.redis.hdel(key, *gone)
            if len(sockets) - len(gone) > limit:
                self.redis.hdel(key, socket_id)
                return False
        except redis.RedisError as error:
            log.warning("live broker: sockets not counted (%s)", error)
        return True

    def forget(self, user_id: int, socket_id: str) -> None:
        import redis

        member = f"{user_id}:{socket_id}"
        try:
            with self.redis.pipeline() as pipe:
                pipe.hdel(PRESENCE_KEY.format(user_id=user_id), socket_id)
                for room in self._announced.pop(socket_id, ()):
                    pipe.zrem(ROOM_WATCHERS_KEY.format(room=room), member)
                pipe.execute()
        except redis.RedisError as error:
            log.warning("live broker: presence not removed (%s)", error)

    def watchers(self, room: int, user_ids: Iterable[int]) -> set[int]:
        """Those of `user_ids` with `room` open in a tab whose presence has not lapsed (a
        socket of a process that died lapses after PRESENCE_TTL, and is pruned here)."""
        import redis

        key, now = ROOM_WATCHERS_KEY.format(room=room), time.time()
        try:
            with self.redis.pipeline(transaction=False) as pipe:
                pipe.zremrangebyscore(key, "-inf", now).zrangebyscore(key, f"({now}", "+inf")
                _, members = pipe.execute()
        except redis.RedisError as error:
            # Unknown: treat everyone as away, so nobody misses the notification.
            log.warning("live broker: presence unknown (%s)", error)
            return set()
        watching = {int(member.partition(b":")[0]) for member in members}
        return watching.intersection(user_ids)

    def health(self) -> str:
        """Redis answers, and the listener (once this process has sockets) is subscribed."""
        import redis

        try:
            self.redis.ping()
        except redis.RedisError:
            return "unreachable"
        return self.error or "ok"


def new_socket_id() -> str:
    return uuid.uuid4().hex
