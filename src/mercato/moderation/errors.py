from mercato.kit.errors import Conflict, Forbidden, InvalidTransition, NotFound


class ReviewTaskNotFound(NotFound):
    code, title = "review_task_not_found", "No such review task"


class ReviewTransitionRefused(InvalidTransition):
    """409 ``invalid_transition``: the task is not in a state that allows this."""


class OwnPublisher(Forbidden):
    code, title = "own_publisher", "Reviewers never review their own publisher's listings"


class ClaimedByOther(Conflict):
    code, title = "claimed_by_other", "Another reviewer holds this task"
