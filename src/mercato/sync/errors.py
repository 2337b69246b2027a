from mercato.kit.errors import ValidationFailed


class InvalidSyncCursor(ValidationFailed):
    """422: the cursor was not given by this feed (or was altered)."""

    code, title = "invalid_cursor", "The sync cursor is not valid"
