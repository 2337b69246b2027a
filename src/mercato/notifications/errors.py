from mercato.kit.errors import NotFound


class NotificationNotFound(NotFound):
    code, title = "notification_not_found", "No such notification"
