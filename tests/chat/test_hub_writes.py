"""How frames reach a socket (app/live/hub.py), on real connected sockets: written at once by
the sender when the socket takes them, queued for the socket's writer when it does not, and
never cut by another frame."""

from __future__ import annotations

import gc
import socket
import threading
import time

import pytest
from wsproto.frame_protocol import FrameProtocol, Opcode

from app.live.hub import Connection, FrameWriter, text_frame


class Tab:
    """The server's side of a socket as the hub sees simple-websocket's object."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.connected = True
        self.event = threading.Event()
        self.closed: int | None = None

    def close(self, reason: int, message: str) -> None:
        """As simple-websocket does: the closing frame, through the socket's writer."""
        self.closed = reason
        self.sock.send(bytes(FrameProtocol(client=False, extensions=[]).close(reason, message)))


def pair() -> tuple[socket.socket, socket.socket]:
    server, client = socket.socketpair()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return server, client


def read_frames(sock: socket.socket, count: int, timeout: float = 10) -> list[str]:
    """Parse `count` frames as a browser would; fails if any arrives cut or mixed."""
    protocol = FrameProtocol(client=True, extensions=[])
    texts: list[str] = []
    parts: list[str] = []
    sock.settimeout(timeout)
    while len(texts) < count:
        protocol.receive_bytes(sock.recv(65536))
        for frame in protocol.received_frames():
            if frame.opcode is Opcode.PING:
                texts.append("<ping>")
                continue
            if frame.opcode is Opcode.CLOSE:
                texts.append(f"<close {frame.payload[0]}>")
                return texts
            parts.append(frame.payload)
            if frame.message_finished:
                texts.append("".join(parts))
                parts = []
    return texts


def test_a_reading_socket_gets_each_frame_from_the_sender_without_a_writer_thread():
    server, client = pair()
    connection = Connection(Tab(server), 1)
    connection.start()
    for n in range(20):
        assert connection.send(f"<p>{n}</p>", room=7, message_id=n + 1)
        assert connection._writer is None  # taken by the socket at once: nothing queued
        assert read_frames(client, 1) == [f"<p>{n}</p>"]
    assert connection.seen == {7: 20}


def test_a_frame_the_socket_takes_in_part_is_finished_before_any_other_frame():
    server, client = pair()
    writer = FrameWriter(server)
    big = "x" * 2_000_000
    assert writer.try_send(text_frame(big))  # started; the rest is pending
    assert writer.pending is not None
    # simple-websocket's own ping, from its thread, while the peer has not read yet
    ping = bytes(FrameProtocol(client=False, extensions=[]).ping(b""))
    pinger = threading.Thread(target=writer.send, args=(ping,))
    pinger.start()
    assert read_frames(client, 2, timeout=30) == [big, "<ping>"]
    pinger.join(timeout=5)
    assert writer.pending is None


def test_a_socket_that_stops_reading_never_holds_up_the_sender_and_is_closed_when_far_behind():
    server, client = pair()
    tab = Tab(server)
    connection = Connection(tab, 1)
    connection.start()
    slowest = 0.0
    accepted = 0
    # What is timed is the hub's waits: a full collection of the test process's heap (a
    # third of a second late in a whole suite run) is kept out of the measured loop.
    gc.collect()
    gc.disable()
    try:
        for n in range(400):
            began = time.perf_counter()
            if connection.send(f"<p>{n} {'y' * 500}</p>", room=7, message_id=n + 1):
                accepted += 1
            slowest = max(slowest, time.perf_counter() - began)
    finally:
        gc.enable()
    assert slowest < 0.05
    # The kernel took what fits in its buffers, the queue the next 200; the next was refused
    # and the socket is closed with 1013 (the tab reconnects and resumes) once the writer
    # gets through: when the tab reads again, it gets what was queued, then the close.
    assert 200 < accepted < 400
    assert not connection.send("<p>too late</p>")
    arrived = read_frames(client, 400)
    assert arrived[-1] == "<close 1013>"
    numbers = [html.split()[0] for html in arrived[:-1]]
    assert numbers == [f"<p>{n}" for n in range(len(numbers))]
    connection.stop()
    assert tab.closed == 1013


def test_frames_queued_behind_a_full_socket_arrive_in_order_once_it_reads_again():
    server, client = pair()
    connection = Connection(Tab(server), 1)
    connection.start()
    sent = [f"<p>{n} {'z' * 300}</p>" for n in range(150)]
    for html in sent:
        assert connection.send(html)
    assert connection.behind() > 0  # the socket's buffers filled: the rest waits in the queue
    assert read_frames(client, len(sent)) == sent
    connection.stop()


def test_a_closed_sockets_number_given_to_another_connection_is_never_written():
    """Once a tab's socket is closed, the next connection accepted may get its number: a
    frame sent to the old socket must fail, not land in the stranger's connection."""
    server, client = pair()
    writer = FrameWriter(server)
    number = server.fileno()
    server.close()
    stranger, stranger_client = pair()  # the lowest free numbers: the one just freed
    assert number in (stranger.fileno(), stranger_client.fileno())
    try:
        with pytest.raises(OSError):
            writer.try_send(text_frame("<p>for the old tab only</p>"))
        for end in (stranger, stranger_client):
            end.setblocking(False)
            with pytest.raises(BlockingIOError):
                end.recv(1024)
    finally:
        for end in (client, stranger, stranger_client):
            end.close()


def test_a_stopped_connection_takes_no_more_frames():
    server, client = pair()
    connection = Connection(Tab(server), user_id=1)
    connection.start()
    connection.stop()
    assert connection.send("<p>late</p>") is False
    client.setblocking(False)
    with pytest.raises(BlockingIOError):
        client.recv(1024)
    server.close()
    client.close()
