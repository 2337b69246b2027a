"""What every publisher command shares: the ``--server``/``--token``/``--listing`` options, failures as
one readable line, the connection to the store and the progress bar of a transfer."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from mercato.cli import output as cli_output

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

    from mercato.client import MercatoClient

ServerOption = Annotated[str | None, typer.Option(
    "--server", envvar="MERCATO_SERVER", show_default=False,
    help="The store's URL, e.g. https://store.example.org (default: the one you logged in to).")]
TokenOption = Annotated[str | None, typer.Option(
    "--token", envvar="MERCATO_TOKEN", show_default=False,
    help="An API token (default: the one saved by `mercato login`).")]
ListingOption = Annotated[str, typer.Option("--listing", "-l", help="The listing's slug (or id).")]


# --- error handling ----------------------------------------------------------------------

def fail(message: str) -> NoReturn:
    cli_output.fail(" ".join(str(message).split()))
    raise AssertionError("unreachable")  # pragma: no cover - fail() always raises


def say(message: str) -> None:
    """A message for the person at the terminal (stderr; stdout stays for what scripts capture)."""
    typer.echo(message, err=True)


@contextmanager
def one_line_errors(*, signed_in: bool = True) -> Iterator[None]:
    """Turn every expected failure into ``error: …`` on one line and exit 1; never a traceback."""
    # lazy: a command loads only what it runs (start-up time of mercato)
    import click

    from mercato.client import ApiError, ClientError

    try:
        yield
    except (typer.Exit, typer.Abort, click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
        raise
    except ApiError as error:
        hint = ""
        if error.status == 401 and signed_in and "sign in" not in str(error) and "login" not in str(error):
            hint = "run `mercato login` to sign in again"
        elif error.status == 401 and signed_in:
            hint = "run `mercato login`"
        elif error.status == 403 and signed_in:
            hint = "your account or token lacks the permission for this"
        fail(f"{str(error).rstrip('.')}; {hint}" if hint else str(error))
    except ClientError as error:
        fail(str(error))
    except KeyboardInterrupt:
        fail("interrupted")
    except Exception as error:  # the user gets one line, a developer sets MERCATO_DEBUG
        # lazy: a command loads only what it runs (start-up time of mercato)
        from mercato.kit.errors import MercatoError

        if isinstance(error, MercatoError):
            fail(mercato_error_line(error))
        if isinstance(error, OSError):
            where = f"{error.filename}: " if error.filename else ""
            fail(f"{where}{error.strerror or error}")
        if os.environ.get("MERCATO_DEBUG"):
            raise
        fail(f"unexpected {type(error).__name__}: {error} (set MERCATO_DEBUG=1 for the traceback)")


def mercato_error_line(error: Any) -> str:
    """A package or domain error (``code``, ``detail``, maybe ``errors``) as one line."""
    # lazy: a command loads only what it runs (start-up time of mercato)
    from mercato.client.errors import format_field_errors

    code = getattr(error, "code", "error")
    detail = " ".join(str(getattr(error, "detail", "") or error).split())
    fields = format_field_errors(list(getattr(error, "errors", None) or []), limit=5,
                                 manifest=str(code).startswith("manifest_"), known=detail)
    if fields:
        generic = detail in {"", getattr(error, "title", "")}
        detail = fields if generic else f"{detail.rstrip('.')}: {fields}"
    return f"{code}: {detail}"


@contextmanager
def connect(server: str | None, token: str | None) -> Iterator[MercatoClient]:
    # lazy: a command loads only what it runs (start-up time of mercato)
    from mercato.client import MercatoClient, credentials

    found = credentials.resolve(server, token)
    with MercatoClient(found.server, found.token) as client:
        yield client


# --- progress ----------------------------------------------------------------------------

def _stderr() -> Console:
    # lazy: a command loads only what it runs (start-up time of mercato)
    from rich.console import Console

    return Console(stderr=True)


class TransferProgress:
    """A rich progress bar (bytes, speed, time left) on stderr for one transfer.

    It appears with the first bytes, so a transfer refused at once leaves no empty bar, and
    only on a terminal (logs of scripts and CI get the summary line instead). Use as a
    context manager; the instance itself is the ``progress(done, total)`` callback.
    """

    def __init__(self, description: str, *, finished_description: str | None = None) -> None:
        self.description = description
        self.finished_description = finished_description
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._console = _stderr()
        self.enabled = self._console.is_terminal

    def __enter__(self) -> TransferProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self._progress is None:
            # lazy: a command loads only what it runs (start-up time of mercato)
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                      TransferSpeedColumn(), TimeRemainingColumn(), console=self._console)
            self._progress.start()
            self._task = self._progress.add_task(self.description, total=total or None)
        assert self._task is not None
        self._progress.update(self._task, completed=done, total=total or None)
        if total and done >= total and self.finished_description:
            self._progress.update(self._task, description=self.finished_description)
