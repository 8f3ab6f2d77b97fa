"""Guesses sent all at once against a real server: the account's lockout still lets through
at most 10 in its window (each attempt is counted before its password is checked)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from tests.live_client import CSRF_META, LiveClient

GUESSES = 40


def test_a_burst_of_guesses_gets_at_most_ten_tries(live_server, make_user):
    make_user("grace")
    clients = [LiveClient(live_server) for _ in range(GUESSES)]
    for client in clients:
        _, page = client.request("GET", "/auth/login")
        client.token = CSRF_META.search(page).group(1)
    start = threading.Barrier(GUESSES)

    def guess(client: LiveClient) -> int:
        start.wait()
        return client.post("/auth/login", {"login": "grace", "password": "a-wrong-guess"})

    with ThreadPoolExecutor(max_workers=GUESSES) as pool:
        statuses = list(pool.map(guess, clients))
    assert statuses.count(422) == 10, statuses
    assert statuses.count(429) == GUESSES - 10
