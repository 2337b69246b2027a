"""Typed problems of installs; each carries its HTTP status and stable ``code``."""

from mercato.kit.errors import Conflict, InvalidTransition, NotFound, ValidationFailed


class InstanceNotFound(NotFound):
    """404: no such instance, or not the caller's (or deleted)."""

    code, title = "instance_not_found", "No such instance"


class InstallationNotFound(NotFound):
    code, title = "installation_not_found", "No such installation"


class TaskNotFound(NotFound):
    """404: no such task, or not the caller's (for an agent: not its instance's)."""

    code, title = "task_not_found", "No such task"


class InstallListingNotFound(NotFound):
    code, title = "listing_not_found", "No such listing"


class VersionNotAvailable(ValidationFailed):
    """422: the version does not exist or is not approved (yanked, in review, …)."""

    code, title = "version_not_available", "That version cannot be installed"


class RequirementsNotMet(ValidationFailed):
    """422: the instance does not meet the manifest's compatibility or requirements; ``errors``
    names each one (platform, host_version, memory_mb, disk_mb)."""

    code, title = "requirements_not_met", "The instance does not meet the package's requirements"


class InvalidConfig(ValidationFailed):
    """422: the install-time configuration does not match the manifest's schema; ``errors``
    names each missing or invalid setting."""

    code, title = "invalid_config", "The configuration does not match the package's settings"


class InstallationNameTaken(Conflict):
    code, title = "installation_name_taken", "An installation of that name exists on this instance"


class InstallationTransitionRefused(InvalidTransition):
    title = "The installation cannot do that in its current state"


class TaskTransitionRefused(InvalidTransition):
    title = "The task cannot do that in its current state"


class TaskCanceled(Conflict):
    """409 to the agent: the task was canceled; abort and roll back."""

    code, title = "task_canceled", "The task was canceled"


class RetryLimitReached(Conflict):
    code, title = "retry_limit_reached", "The task has used all its attempts"


class AlreadyLatest(Conflict):
    code, title = "already_latest", "The installation already has that version or a newer one"


class NothingToOpen(Conflict):
    code, title = "nothing_to_open", "This installation has nothing to open"
