from mercato.kit.errors import Conflict, NotFound, ValidationFailed
from mercato.kit.ssrf import UrlNotAllowed

__all__ = ["UnknownEventTypes", "UrlNotAllowed", "WebhookLimitReached", "WebhookNotFound"]


class WebhookNotFound(NotFound):
    code, title = "webhook_not_found", "No such webhook"


class UnknownEventTypes(ValidationFailed):
    code, title = "unknown_event_type", "Unknown event type"


class WebhookLimitReached(Conflict):
    code, title = "webhook_limit_reached", "Too many webhooks"
