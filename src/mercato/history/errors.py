from mercato.kit.errors import ValidationFailed


class InvalidHistoryRange(ValidationFailed):
    """422: ``since`` is after ``until``."""

    code, title = "invalid_range", "The time range is empty"
