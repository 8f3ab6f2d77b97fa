"""A signed-in HTTP client for a live server: what the concurrency test and bench/ use to act
as many students at once. Cookies are kept per client, as a browser does."""

from __future__ import annotations

import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # keep the 303 for the caller to see


class LiveClient:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), NoRedirect()
        )
        self.token = ""

    def request(self, method: str, path: str, data: dict | None = None) -> tuple[int, str]:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        request = urllib.request.Request(self.base_url + path, data=body, method=method)
        try:
            with self.opener.open(request, timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def sign_in(self, login: str, password: str) -> None:
        status, page = self.request("GET", "/auth/login")
        self.token = CSRF_META.search(page).group(1)
        status, _ = self.request(
            "POST", "/auth/login", {"login": login, "password": password, "csrf_token": self.token}
        )
        assert status == 303, f"{login} could not sign in: {status}"
        # The session was renewed at sign-in: take the token of a signed-in page.
        _, page = self.request("GET", "/profile")
        self.token = CSRF_META.search(page).group(1)

    def post(self, path: str, data: dict | None = None) -> int:
        return self.request("POST", path, {"csrf_token": self.token, **(data or {})})[0]
