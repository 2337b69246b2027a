from mercato.kit.errors import Conflict, NotFound


class PublisherNotFound(NotFound):
    code, title = "publisher_not_found", "No such publisher"


class SlugTaken(Conflict):
    code, title = "slug_taken", "This publisher slug is taken"


class ApplicationNotFound(NotFound):
    code, title = "application_not_found", "No such publisher application"


class ApplicationPending(Conflict):
    code, title = "application_pending", "You already have a pending publisher application"


class ApplicationDecided(Conflict):
    code, title = "invalid_transition", "This application was already decided"


class MemberNotFound(NotFound):
    code, title = "member_not_found", "No such member"


class LastOwner(Conflict):
    code, title = "last_owner", "A publisher must keep at least one owner"
