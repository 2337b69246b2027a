from mercato.kit.errors import Conflict, Forbidden, InvalidTransition, NotFound, ValidationFailed
from mercato.kit.errors import RangeNotSatisfiable as RangeNotSatisfiable  # moved to kit with byte_range


class VersionNotFound(NotFound):
    code, title = "version_not_found", "No such version"


class VersionExists(Conflict):
    code, title = "version_exists", "This version was already uploaded"


class ManifestMismatch(ValidationFailed):
    code, title = "manifest_mismatch", "The package's manifest does not match the listing"


class VersionTransitionRefused(InvalidTransition):
    """409 ``invalid_transition``: the version is not in a state that allows this."""


class NothingToSubmit(Conflict):
    code, title = "nothing_to_submit", "There is no uploaded version to submit"


class NotEntitled(Forbidden):
    code, title = "not_entitled", "You do not own this listing"


