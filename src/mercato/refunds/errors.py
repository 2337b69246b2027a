from mercato.kit.errors import Conflict, InvalidTransition, NotFound, ValidationFailed


class RefundNotFound(NotFound):
    code, title = "refund_not_found", "No such refund"


class OrderNotFound(NotFound):
    """404: no such order, or not the caller's."""

    code, title = "order_not_found", "No such order"


class OrderNotRefundable(Conflict):
    """409: only completed (or partly refunded) orders are refunded; before that the buyer cancels."""

    code, title = "order_not_refundable", "This order cannot be refunded"


class RefundWindowClosed(Conflict):
    code, title = "refund_window_closed", "The refund window of this order has closed"


class AlreadyRefunded(Conflict):
    """409: the line (or those units of it) has been refunded already."""

    code, title = "already_refunded", "Already refunded"


class InvalidRefundLines(ValidationFailed):
    code, title = "invalid_refund_lines", "The refund names lines or quantities this order does not have"


class RefundAlreadyDecided(InvalidTransition):
    title = "This refund was decided already"
