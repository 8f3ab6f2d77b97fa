"""The baseline for bench_chat.py: a flask-sock app that does nothing but fan each message out
to the sockets that joined as members (`/ws?member=1`). No sessions, no database, no HTML."""

from __future__ import annotations

import threading

from flask import Flask, request
from flask_sock import Sock

app = Flask(__name__)
app.config["SOCK_SERVER_OPTIONS"] = {"ping_interval": 25}
sock = Sock(app)
members: set = set()
lock = threading.Lock()


@app.get("/")
def ready() -> str:
    return "ok"


@sock.route("/ws")
def fan_out(ws) -> None:
    if request.args.get("member") == "1":
        with lock:
            members.add(ws)
    try:
        while True:
            data = ws.receive()
            with lock:
                targets = list(members)
            for target in targets:
                try:
                    target.send(data)
                except Exception:
                    with lock:
                        members.discard(target)
    finally:
        with lock:
            members.discard(ws)
