"""The messages a page shows once ("Your profile is saved.") wait in the session cookie until
a page shows them. A client that never reads them (a script, a tab closed before the
redirect) must not grow the cookie past what browsers keep: a cookie over 4 KB is dropped
without a word, and with it the person's session."""

from __future__ import annotations

import re

from tests.conftest import CampusClient

MESSAGE = re.compile(r'<p class="flash[^"]*" role="[a-z]+">([^<]*)</p>')
COURSE = {"description": "About it.", "keywords": "", "capacity": "", "published": "y"}


def shown(client: CampusClient, path: str = "/auth/login") -> list[str]:
    return MESSAGE.findall(client.get(path).get_data(as_text=True))


def cookie_size(client: CampusClient) -> int:
    return len(client.get_cookie("session").value)


def test_the_same_message_unread_many_times_is_kept_once(
    app, client: CampusClient, make_user, mail_to
):
    app.config.update(
        FORGOT_ACCOUNT_LIMIT="100 per minute",
        FORGOT_ADDRESS_LIMIT="100 per minute",
        FORGOT_MIN_SECONDS=0.01,
    )
    make_user("grace")
    token = client.csrf_token()
    for _ in range(20):
        response = client.post("/auth/forgot", data={"login": "grace", "csrf_token": token})
        assert response.status_code == 303  # the page that would show the message is not read
    assert cookie_size(client) < 1024
    messages = shown(client)
    assert len(messages) == 1 and "link" in messages[0]
    assert shown(client) == []  # shown once


def test_only_the_newest_messages_wait_and_the_cookie_stays_small(
    client: CampusClient, make_user, login_as
):
    login_as(make_user("ada", role="teacher"))
    token = client.csrf_token()  # taken once: reading a page would show the messages
    for n in range(30):
        title = f"Course number {n} with a long title about the sea and its shores"
        response = client.post("/courses", data=COURSE | {"title": title, "csrf_token": token})
        assert response.status_code == 303
        assert cookie_size(client) < 2048
    messages = shown(client, "/dashboard")
    assert len(messages) == 5
    assert [re.search(r"number (\d+)", m).group(1) for m in messages] == [
        "25", "26", "27", "28", "29"
    ]  # fmt: skip
    assert shown(client, "/dashboard") == []
