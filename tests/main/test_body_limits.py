"""What one request may make the server read: only the upload routes, for someone allowed to
upload there, read a large body (to disk); everyone and everything else gets 413 or 403 before
a byte of the body is read, and nothing lands in UPLOAD_DIR/tmp (DESIGN.md "Security")."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from app.extensions import db
from app.models import Material

MB = 1024 * 1024
BOUNDARY = "campus-boundary"


class CountingBody(io.RawIOBase):
    """A request body of `size` bytes that counts how much of it the server read."""

    def __init__(self, size: int) -> None:
        head = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.pdf"\r\n'
            "Content-Type: application/pdf\r\n\r\n%PDF-1.4\n"
        ).encode()
        self.head, self.size, self.read_bytes, self.position = head, size, 0, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:  # the test client measures the body by seeking to its end
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self.position = self.size + offset if whence == 2 else offset
        return self.position

    def tell(self) -> int:
        return self.position

    def readinto(self, buffer) -> int:
        count = min(len(buffer), self.size - self.read_bytes)
        piece = self.head[self.read_bytes : self.read_bytes + count]
        buffer[:count] = piece + b"x" * (count - len(piece))
        self.read_bytes += count
        return count


def tmp_files(app) -> list[Path]:
    folder = Path(app.config["UPLOAD_DIR"]) / "tmp"
    return list(folder.iterdir()) if folder.exists() else []


def post_five_megabytes(client, url: str) -> tuple[int, int]:
    """POST 5 MB of multipart body; the status and how many bytes the server read."""
    body = CountingBody(5 * MB)
    response = client.post(
        url,
        input_stream=body,
        content_length=body.size,
        content_type=f"multipart/form-data; boundary={BOUNDARY}",
    )
    return response.status_code, body.read_bytes


@pytest.fixture
def teacher(make_user):
    return make_user("tina", role="teacher")


@pytest.fixture
def course(make_course, teacher):
    return make_course(teacher, title="Geography")


def test_anonymous_posts_of_five_megabytes_are_refused_unread(app, client, course):
    for url in ("/auth/login", "/profile/edit", f"/courses/{course.id}/materials"):
        status, read = post_five_megabytes(client, url)
        assert (url, status, read) == (url, 413, 0)
    assert tmp_files(app) == []


@pytest.mark.parametrize("who", ["student", "other teacher"])
def test_upload_route_refuses_who_may_not_upload_before_reading(
    app, client, make_user, login_as, course, who
):
    login_as(make_user("sam") if who == "student" else make_user("otto", role="teacher"))
    status, read = post_five_megabytes(client, f"/courses/{course.id}/materials")
    assert (status, read) == (403, 0)
    assert tmp_files(app) == []


def test_signed_in_forms_have_the_small_limit_too(app, client, login_as, teacher, course):
    login_as(teacher)
    for url in ("/profile/edit", f"/courses/{course.id}/edit", "/chat/1/messages"):
        status, read = post_five_megabytes(client, url)
        assert (url, status, read) == (url, 413, 0)
    assert tmp_files(app) == []


def test_a_small_file_part_sent_elsewhere_never_touches_the_disk(app, client):
    folder = Path(app.config["UPLOAD_DIR"]) / "tmp"
    data = {"login": "x", "password": "y", "file": (io.BytesIO(b"%PDF" * 10_000), "a.pdf")}
    response = client.post("/auth/login", data=data, content_type="multipart/form-data")
    assert response.status_code == 400  # no CSRF token: the form was read from memory
    assert not folder.exists()


def test_the_owner_still_uploads_a_large_file(app, client, login_as, teacher, course):
    login_as(teacher)
    big = b"%PDF-1.4\n" + b"0" * (3 * MB)
    data = {"file": [(io.BytesIO(big), "atlas.pdf")]}
    response = client.post_form(
        f"/courses/{course.id}/materials", data, content_type="multipart/form-data"
    )
    assert response.status_code == 303
    assert db.session.query(Material).one().size == len(big)
    assert tmp_files(app) == []
