"""The agent's downloads folder (``ROOT/.mercato-agent/downloads``): a task's archive, fetched
or resumed, its SHA-256 checked against the task's and the store's before it is used.

``<sha256>.part`` while downloading (``.part.etag`` beside it for resuming), then
``<sha256>.archive`` with ``<sha256>.json`` (what the store said about it) once checked.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from mercato.agent import verify
from mercato.agent.backoff import Backoff, transient
from mercato.agent.client import AgentClient, Downloaded
from mercato.agent.errors import ChecksumMismatch, DownloadFailed, InvalidTask
from mercato.agent.files import read_json, write_json_atomic
from mercato.agent.progress import TerminalProgress, human_bytes
from mercato.agent.reporter import Reporter
from mercato.client.errors import ApiError, ClientError
from mercato.installs.schemas import Artifact

ATTEMPTS = 6


class Downloads:
    def __init__(self, client: AgentClient, folder: Path, terminal: TerminalProgress, backoff: Backoff) -> None:
        self.client = client
        self.folder = folder
        self.terminal = terminal
        self.backoff = backoff

    async def fetch(self, artifact: Artifact, reporter: Reporter) -> tuple[Path, Downloaded]:
        """The archive, downloaded (or resumed) into the downloads folder, its SHA-256
        checked against the task's and the store's."""
        sha256 = artifact.sha256.lower()
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise InvalidTask("the task's artifact has no valid sha256")
        if not artifact.url:
            raise InvalidTask("the task's artifact has no url")
        done_path = self.folder / f"{sha256}.archive"
        meta_path = self.folder / f"{sha256}.json"
        meta = read_json(meta_path)
        if done_path.exists() and meta is not None:  # downloaded before a restart: check it again
            try:
                await asyncio.to_thread(verify.check_checksum, done_path, expected=sha256,
                                        declared=meta.get("declared_sha256"))
            except ChecksumMismatch:
                self.forget(sha256)
            else:
                return done_path, Downloaded(path=done_path, size=done_path.stat().st_size, resumed_from=0,
                                             declared_sha256=meta.get("declared_sha256"),
                                             signature=meta.get("signature"), key_id=meta.get("key_id"))
        part = self.folder / f"{sha256}.part"
        downloaded = await self._download(artifact.url, part, size=artifact.size, reporter=reporter)
        if downloaded.declared_sha256 and downloaded.declared_sha256 != sha256:
            self.forget(sha256)
            raise ChecksumMismatch(f"the store sent SHA-256 {downloaded.declared_sha256} for an artifact the task "
                                   f"names {sha256}; nothing was installed")
        try:
            await asyncio.to_thread(verify.check_checksum, part, expected=sha256,
                                    declared=downloaded.declared_sha256)
        except ChecksumMismatch:
            self.forget(sha256)  # never resume from bytes that do not add up
            raise
        write_json_atomic(meta_path, {"declared_sha256": downloaded.declared_sha256,
                                      "signature": downloaded.signature, "key_id": downloaded.key_id})
        part.rename(done_path)
        part.with_name(part.name + ".etag").unlink(missing_ok=True)
        return done_path, Downloaded(path=done_path, size=downloaded.size, resumed_from=downloaded.resumed_from,
                                     declared_sha256=downloaded.declared_sha256, signature=downloaded.signature,
                                     key_id=downloaded.key_id)

    async def _download(self, url: str, part: Path, *, size: int, reporter: Reporter) -> Downloaded:
        """Fetch into ``part``, resuming after network failures (a few times, with backoff)."""

        def received(done: int, total: int) -> None:
            total = total or size
            percent = 70 * done // total if total else 0
            reporter.soon(percent, "downloading", f"{human_bytes(done)}/{human_bytes(total)}")

        backoff = self.backoff.fresh()
        attempt = 1
        while True:
            try:
                return await self.client.download(url, part, progress=received)
            except ApiError as error:
                if not transient(error) or attempt == ATTEMPTS:
                    raise DownloadFailed(f"the store refused the download ({error}); nothing was installed") \
                        from None
            except ClientError as error:
                if attempt == ATTEMPTS:
                    raise DownloadFailed(f"{error}; the partial download is kept and resumes next time") from None
            attempt += 1
            self.terminal.note("download interrupted; resuming")
            await asyncio.sleep(backoff.next_delay())

    def forget(self, sha256: str) -> None:
        """Delete everything kept of one archive (a new attempt downloads it afresh)."""
        for suffix in (".archive", ".json", ".part", ".part.etag"):
            (self.folder / f"{sha256}{suffix}").unlink(missing_ok=True)
