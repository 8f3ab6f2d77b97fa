"""Reading search results off a page."""

from __future__ import annotations

import re


def course_ids(response) -> list[int]:
    assert response.status_code == 200, response.status_code
    return [int(i) for i in re.findall(r'data-course-id="(\d+)"', response.get_data(as_text=True))]


def usernames(response) -> list[str]:
    assert response.status_code == 200, response.status_code
    return re.findall(r'data-username="([^"]+)"', response.get_data(as_text=True))


def marks(response) -> list[str]:
    return re.findall(r"<mark>(.*?)</mark>", response.get_data(as_text=True))
