"""Files on disk: uploads stream into UPLOAD_DIR/tmp, are checked by their content, and are
renamed into UPLOAD_DIR/files under a generated name. Nothing here knows about courses."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import secrets
import unicodedata
from pathlib import Path
from typing import IO

import magic
from flask import Flask, Request, current_app, g

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
ALLOWED_TYPES = (
    "application/pdf",
    "application/zip",
    "application/vnd.openxmlformats-officedocument.",  # docx, xlsx, pptx
    "application/vnd.oasis.opendocument.",  # odt, ods, odp
    "application/msword",
    "application/vnd.ms-excel",
    "application/vnd.ms-powerpoint",
    "image/",
    "audio/",
    "video/",
    "text/plain",
    "text/csv",
    "text/markdown",
)
REFUSED_TYPES = ("image/svg", "text/html", "application/xhtml")
# Text that a browser would run or render as a page: libmagic calls much of it text/plain.
MARKUP = (b"<html", b"<!doctype", b"<script", b"<svg", b"<iframe", b"<body", b"<?xml", b"<head")


def upload_dir(app: Flask | None = None) -> Path:
    return Path((app or current_app).config["UPLOAD_DIR"])


def tmp_dir(app: Flask | None = None) -> Path:
    return upload_dir(app) / "tmp"


def files_dir(app: Flask | None = None) -> Path:
    return upload_dir(app) / "files"


class StreamingRequest(Request):
    """On the upload routes (app.web.accepts_large_body), multipart file parts stream into
    temporary files in UPLOAD_DIR/tmp, never whole into memory; the request remembers them so
    that teardown removes what was not kept. Anywhere else a file part is a few bytes in
    memory: the small body limit bounds it, and nobody can fill the disk."""

    def _get_file_stream(
        self, total_content_length, content_type, filename=None, content_length=None
    ) -> IO[bytes]:
        if not g.get("spool_uploads"):
            return io.BytesIO()
        directory = tmp_dir()
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"upload-{secrets.token_hex(16)}"
        stream = open(path, "xb+")  # noqa: SIM115 - closed by werkzeug's FileStorage
        g.setdefault("upload_paths", []).append(path)
        return stream


def remove_request_leftovers(_error: BaseException | None = None) -> None:
    """After every request: the temporary files it did not keep are deleted."""
    for path in g.pop("upload_paths", []):
        path.unlink(missing_ok=True)


def content_type_of(path: Path) -> str | None:
    """The file's type by its content, or None when it is not one we accept."""
    found = magic.from_file(str(path), mime=True)
    if found.startswith(REFUSED_TYPES) or not found.startswith(ALLOWED_TYPES):
        return None
    if found.startswith("text/"):
        with path.open("rb") as file:
            head = file.read(64 * 1024)
        lowered = head.lower()
        if any(tag in lowered for tag in MARKUP):
            return None
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as error:
            if error.start < len(head) - 4:  # not merely a character cut at the end
                return None
        return "text/plain; charset=utf-8" if found == "text/plain" else found
    return found


def digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            sha.update(chunk)
    return sha.hexdigest()


def keep(temporary: Path) -> str:
    """Move a checked upload into place under a new name (atomic: same file system)."""
    stored_name = secrets.token_hex(16)
    directory = files_dir()
    directory.mkdir(parents=True, exist_ok=True)
    os.replace(temporary, directory / stored_name)
    return stored_name


def stored_path(stored_name: str) -> Path:
    return files_dir() / stored_name


def clean_name(name: str) -> str:
    """A display name: the last path part, no control characters, at most 255 characters
    (the extension kept)."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip(" .")
    if len(name) > 255:
        stem, dot, extension = name.rpartition(".")
        name = (
            stem[: 250 - len(extension)] + dot + extension
            if dot and len(extension) < 10
            else name[:255]
        )
    return name or "file"


def sweep(app: Flask, known: set[str]) -> int:
    """Remove temporary leftovers and stored files no row points to. Run it while nothing is
    uploading: at start-up, before the workers (gunicorn.conf.py) or the dev server start."""
    removed = 0
    for path in list(tmp_dir(app).glob("*")) if tmp_dir(app).exists() else []:
        path.unlink(missing_ok=True)
        removed += 1
    for path in list(files_dir(app).glob("*")) if files_dir(app).exists() else []:
        if path.name not in known:
            path.unlink(missing_ok=True)
            removed += 1
    if removed:
        log.info("upload sweep removed %d leftover files", removed)
    return removed
