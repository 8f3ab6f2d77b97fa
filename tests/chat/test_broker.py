"""The brokers on their own: delivery to this process's sockets, presence, and what happens
when Redis is not there."""

from __future__ import annotations

import os
import threading
import time

import pytest

from app.live import Connection, Delivery, Live


class Tab:
    """The sending side of a socket: what was sent to it, or a failure once it is gone."""

    def __init__(self, broken: bool = False) -> None:
        self.received: list[str] = []
        self.broken = broken
        self.arrived = threading.Event()
        self.closed: int | None = None

    def send(self, html: str) -> None:
        if self.broken:
            raise ConnectionResetError
        self.received.append(html)
        self.arrived.set()

    def close(self, reason: int, message: str) -> None:
        self.closed = reason


def test_local_delivery_reaches_every_tab_of_each_member():
    channel = Live(None)
    ana_1, ana_2, bo, eve = Tab(), Tab(), Tab(), Tab()
    connections = [
        Connection(ana_1, 1),
        Connection(ana_2, 1),
        Connection(bo, 2),
        Connection(eve, 3),
    ]
    for connection in connections:
        channel.open(connection)
    channel.publish([1, 2], "<p>hi</p>")
    assert (ana_1.received, ana_2.received, bo.received, eve.received) == (
        ["<p>hi</p>"],
        ["<p>hi</p>"],
        ["<p>hi</p>"],
        [],
    )


def test_ended_sessions_close_only_that_persons_sockets():
    channel = Live(None)
    ana_1, ana_2, bo = Tab(), Tab(), Tab()
    for tab, user_id in ((ana_1, 1), (ana_2, 1), (bo, 2)):
        channel.open(Connection(tab, user_id))
    channel.end_sessions([1])
    assert (ana_1.closed, ana_2.closed, bo.closed) == (1008, 1008, None)


def test_a_broken_socket_is_dropped_and_the_others_still_receive():
    channel = Live(None)
    gone, alive = Tab(broken=True), Tab()
    channel.open(Connection(gone, 1))
    channel.open(Connection(alive, 1))
    channel.publish([1], "<p>one</p>")
    channel.publish([1], "<p>two</p>")
    assert alive.received == ["<p>one</p>", "<p>two</p>"]
    assert channel.hub.count() == 1


def test_presence_says_who_has_a_room_open():
    channel = Live(None)
    watching = Connection(Tab(), 1, rooms={7})
    elsewhere = Connection(Tab(), 2, rooms={8})
    channel.open(watching)
    channel.open(elsewhere)
    assert channel.broker.watchers(7, [1, 2, 3]) == {1}
    channel.close(watching)
    assert channel.broker.watchers(7, [1, 2, 3]) == set()


def test_without_redis_messages_still_reach_this_process():
    """Redis down: publishing falls back to this process's sockets, and health says so."""
    channel = Live("redis://127.0.0.1:1/0")
    tab = Tab()
    connection = Connection(tab, 1, rooms={7})
    channel.hub.add(connection)
    channel.publish([1], "<p>still here</p>")
    assert tab.received == ["<p>still here</p>"]
    assert channel.broker.health() == "unreachable"
    # Presence is unknown: everyone counts as away, so nobody misses a notification.
    assert channel.broker.watchers(7, [1]) == set()


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis")
def test_two_processes_worth_of_brokers_share_deliveries_and_presence():
    url = os.environ["REDIS_URL"]
    first, second = Live(url), Live(url)
    tab = Tab()
    connection = Connection(tab, 424242, rooms={99})
    second.open(connection)  # starts second's listener
    first.publish([424242], "<p>across</p>")
    assert tab.arrived.wait(5)
    assert tab.received == ["<p>across</p>"]
    assert first.broker.watchers(99, [424242, 434343]) == {424242}
    second.close(connection)
    assert first.broker.watchers(99, [424242]) == set()


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis")
def test_presence_follows_a_tab_from_room_to_room_across_processes():
    url = os.environ["REDIS_URL"]
    first, second = Live(url), Live(url)
    tab = Connection(Tab(), 525252, rooms={97})
    other = Connection(Tab(), 535353, rooms={97, 98})
    second.open(tab)
    first.open(other)
    assert first.broker.watchers(97, [525252, 535353, 545454]) == {525252, 535353}
    tab.rooms = {98}  # the tab shows another room now
    second.broker.watch(tab.user_id, tab.id, tab.rooms)
    assert first.broker.watchers(97, [525252, 535353]) == {535353}
    assert first.broker.watchers(98, [525252, 535353]) == {525252, 535353}
    assert first.broker.watchers(98, [525252]) == {525252}  # only those asked about
    second.close(tab)
    first.close(other)
    assert first.broker.watchers(98, [525252, 535353]) == set()
    assert first.broker.watchers(97, [525252, 535353]) == set()


def test_delivery_survives_a_json_round_trip():
    delivery = Delivery((1, 2), "<p>é</p>", room=3, message_id=4, close=True)
    assert Delivery.from_json(delivery.to_json()) == delivery


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis")
def test_the_listener_reconnects_after_redis_drops_it_and_tabs_catch_up():
    import redis

    url = os.environ["REDIS_URL"]
    sender, receiver = Live(url), Live(url)
    tab = Tab()
    receiver.open(Connection(tab, 515151))
    # Redis drops the listener's connection (a restart or a network cut looks the same).
    admin = redis.Redis.from_url(url)
    listeners = [
        client["id"]
        for client in admin.client_list(_type="pubsub")
        if client["name"] == receiver.broker.name
    ]
    assert listeners
    for client_id in listeners:
        admin.client_kill_filter(_id=client_id)
    # What was published while the listener was away is lost to it: once it listens again,
    # the tabs of this process are told to reconnect (1012), which makes them resume from
    # their newest message.
    deadline = time.monotonic() + 10
    while tab.closed is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert tab.closed == 1012
    # The reconnected tab gets what is published from then on.
    again = Tab()
    receiver.open(Connection(again, 515151))
    deadline = time.monotonic() + 10
    while not again.received and time.monotonic() < deadline:
        sender.publish([515151], "<p>after the cut</p>")
        again.arrived.wait(0.5)
    assert again.received and again.received[0] == "<p>after the cut</p>"
    assert receiver.broker.health() == "ok"
