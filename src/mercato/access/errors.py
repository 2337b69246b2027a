from mercato.kit.errors import Conflict, MercatoError, NotFound, ValidationFailed


class RoleNotFound(NotFound):
    code, title = "role_not_found", "No such role"


class UnknownPermission(ValidationFailed):
    code, title = "unknown_permission", "Unknown permission or condition"


class UnknownRole(ValidationFailed):
    """A role named in a request body does not exist: the body is invalid (422), nothing is missing."""

    code, title = "unknown_role", "Unknown role"


class LastSuperAdmin(Conflict):
    code, title = "last_super_admin", "The store must keep at least one super admin"


class RoleLocked(Conflict):
    code, title = "role_locked", "This role's permissions cannot be narrowed"


__all__ = ["LastSuperAdmin", "MercatoError", "RoleLocked", "RoleNotFound", "UnknownPermission", "UnknownRole"]
