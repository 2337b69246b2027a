"""Moving package archives to and from disk in chunks: hashing, the streamed multipart upload
body and the file name of a download, so a package never has to fit in memory."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import unquote

import httpx

from mercato.client.errors import ClientError

CHUNK_SIZE = 256 * 1024

Progress = Callable[[int, int], None]
"""Called with (bytes done, bytes in total) as a transfer goes on; total is 0 when unknown."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


class MultipartUpload:
    """A ``multipart/form-data`` body streamed from a file, with its exact length known up front."""

    def __init__(self, path: Path, size: int, *, fields: dict[str, str], progress: Progress | None) -> None:
        self.path = path
        self.size = size
        self.progress = progress
        self.boundary = f"mercato-{secrets.token_hex(16)}"
        parts = [f"--{self.boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
                 for name, value in fields.items()]
        filename = path.name.replace("\\", "_").replace('"', "_").replace("\r", "_").replace("\n", "_")
        parts.append(f"--{self.boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                     f"filename=\"{filename}\"\r\nContent-Type: {_archive_type(path)}\r\n\r\n")
        self.head = "".join(parts).encode("utf-8")
        self.tail = f"\r\n--{self.boundary}--\r\n".encode("ascii")

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    @property
    def content_length(self) -> int:
        return len(self.head) + self.size + len(self.tail)

    def __iter__(self) -> Iterator[bytes]:
        yield self.head
        sent = 0
        if self.progress:
            self.progress(0, self.size)
        with open(self.path, "rb") as handle:
            while sent < self.size:
                chunk = handle.read(min(CHUNK_SIZE, self.size - sent))
                if not chunk:
                    raise ClientError(f"{self.path} shrank while it was being uploaded")
                yield chunk  # resumes once the chunk has been handed to the connection
                sent += len(chunk)
                if self.progress:
                    self.progress(sent, self.size)
        yield self.tail


def _archive_type(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".zip"):
        return "application/zip"
    if name.endswith((".tar.gz", ".tgz")):
        return "application/gzip"
    return "application/octet-stream"


def download_name(response: httpx.Response, listing: str, version: str) -> str:
    """The file name the store suggests (Content-Disposition), reduced to a safe base name."""
    disposition = response.headers.get("content-disposition", "")
    match = re.search(r"filename\*=(?:UTF-8'')?([^;]+)", disposition, re.I) or \
        re.search(r'filename="?([^";]+)"?', disposition, re.I)
    name = ""
    if match:
        name = unquote(match.group(1).strip().strip('"'))
        name = re.sub(r"[^A-Za-z0-9._+-]", "_", name.replace("\\", "/").rsplit("/", 1)[-1]).lstrip(".")
    if not name:
        kind = response.headers.get("content-type", "")
        suffix = ".zip" if "zip" in kind else ".tar.gz" if "gzip" in kind or "tar" in kind else ""
        name = re.sub(r"[^A-Za-z0-9._+-]", "_", f"{listing}-{version}") + suffix
    return name


def discard(path: Path | None) -> None:
    """Remove a partial download, if one was started."""
    if path is not None:
        path.unlink(missing_ok=True)
