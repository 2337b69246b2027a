from mercato.kit.errors import Conflict, Forbidden, NotFound, Unauthenticated, ValidationFailed


class EmailTaken(Conflict):
    code, title = "email_taken", "An account with this email already exists"


class WeakPassword(ValidationFailed):
    code, title = "weak_password", "The password does not meet the policy"


class InvalidCredentials(Unauthenticated):
    code, title = "invalid_credentials", "Email or password is wrong"


class InvalidRefreshToken(Unauthenticated):
    code, title = "invalid_refresh_token", "The refresh token is not valid"


class WrongCurrentPassword(Forbidden):
    code, title = "wrong_current_password", "The current password is wrong"


class UserNotFound(NotFound):
    code, title = "user_not_found", "No such user"


class TokenNotFound(NotFound):
    code, title = "token_not_found", "No such API token"


class InvalidScope(ValidationFailed):
    code, title = "invalid_scope", "Unknown or not permitted token scope"


class AccountDisabled(Unauthenticated):
    code, title = "account_disabled", "This account is disabled"
