"""A throwaway S3 service for tests: moto's server, started as a subprocess on a free port.

``moto_server()`` starts it (the OS picks the port; we read it from the server's log), yields
its endpoint URL, and stops exactly the process it started.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ACCESS_KEY_ID = "testing"
SECRET_ACCESS_KEY = "testing"
REGION = "us-east-1"
_LISTENING = re.compile(r"Running on (http://127\.0\.0\.1:\d+)")


@contextmanager
def moto_server(timeout: float = 20.0) -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="moto-") as directory:
        log_path = Path(directory) / "moto.log"
        with log_path.open("wb") as log:  # a file, not a pipe: the server logs every request
            process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            endpoint = _wait_for_endpoint(process, log_path, timeout)
            yield endpoint
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_for_endpoint(process: subprocess.Popen[bytes], log_path: Path, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited with {process.returncode}: {log_path.read_text()[-2000:]}")
        found = _LISTENING.search(log_path.read_text(errors="replace"))
        if found:
            endpoint = found.group(1)
            try:
                socket.create_connection(("127.0.0.1", int(endpoint.rsplit(":", 1)[1])), timeout=2).close()
                return endpoint
            except OSError:
                pass
        time.sleep(0.05)
    raise RuntimeError(f"moto server did not start within {timeout} s")


def admin_client(endpoint: str) -> Any:
    """A plain (blocking) boto3 client for arranging and inspecting buckets in tests."""
    import boto3  # comes with moto

    return boto3.client("s3", region_name=REGION, endpoint_url=endpoint,
                        aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY)


def leftovers(client: Any, bucket: str) -> list[str]:
    """Every object key, and every unfinished multipart upload, in ``bucket``."""
    objects = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return [item["Key"] for item in objects] + [f"upload:{item['Key']}" for item in uploads]
