"""Why the agent could not carry out a task: a stable ``code`` and a readable message.

A task that fails reports ``{"code", "message"}`` as its error; the codes are listed in
``docs/agent.md``. Nothing here is an HTTP error: the agent is a client.
"""

from __future__ import annotations


class AgentError(Exception):
    """Base for every task failure; ``str()`` says what went wrong and what was left in place."""

    code = "agent_error"
    retryable = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidTask(AgentError):
    """The task asks for something this agent cannot do (unknown kind, missing or unsafe fields)."""

    code = "invalid_task"


class NameTaken(AgentError):
    code = "name_taken"


class NotInstalled(AgentError):
    code = "not_installed"


class DownloadFailed(AgentError):
    code = "download_failed"
    retryable = True


class ChecksumMismatch(AgentError):
    code = "checksum_mismatch"


class SignatureInvalid(AgentError):
    code = "signature_invalid"


class LicenceInvalid(AgentError):
    code = "licence_invalid"


class PackageRefused(AgentError):
    """The archive failed the store's package checks, or is not the listing and version asked for."""

    code = "package_invalid"


class InsufficientDisk(AgentError):
    code = "insufficient_disk"


class InstallFailed(AgentError):
    """Writing to the install root failed; whatever was current before still is."""

    code = "install_failed"


class Canceled(AgentError):
    code = "canceled"
