"""A signed-in HTTP client for a live server: what the concurrency test and bench/ use to act
as many students at once. It keeps its cookies as a browser does (sending them back even when
marked Secure, since the live server speaks plain HTTP on 127.0.0.1)."""

from __future__ import annotations

import http.client
import re
import urllib.parse
from http.cookies import SimpleCookie

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


class LiveClient:
    def __init__(self, base_url: str) -> None:
        parts = urllib.parse.urlsplit(base_url)
        self.host, self.port = parts.hostname, parts.port
        self.cookies: dict[str, str] = {}
        self.token = ""

    def request(self, method: str, path: str, data: dict | None = None) -> tuple[int, str]:
        """One request on a new connection; redirects are returned, not followed."""
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if data is not None:
            body = urllib.parse.urlencode(data)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            for header in response.headers.get_all("Set-Cookie") or []:
                for name, morsel in SimpleCookie(header).items():
                    self.cookies[name] = morsel.value
            return response.status, response.read().decode()
        finally:
            connection.close()

    def sign_in(self, login: str, password: str) -> None:
        _, page = self.request("GET", "/auth/login")
        self.token = CSRF_META.search(page).group(1)
        data = {"login": login, "password": password, "csrf_token": self.token}
        status, _ = self.request("POST", "/auth/login", data)
        assert status == 303, f"{login} could not sign in: {status}"
        # Signing in starts a new session: take the token of a signed-in page.
        _, page = self.request("GET", "/profile")
        self.token = CSRF_META.search(page).group(1)

    def post(self, path: str, data: dict | None = None) -> int:
        return self.request("POST", path, {"csrf_token": self.token, **(data or {})})[0]

    def get(self, path: str) -> int:
        return self.request("GET", path)[0]
