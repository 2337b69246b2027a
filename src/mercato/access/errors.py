from mercato.kit.errors import Conflict, MercatoError, NotFound, ValidationFailed


class RoleNotFound(NotFound):
    code, title = "role_not_found", "No such role"


class UnknownPermission(ValidationFailed):
    code, title = "unknown_permission", "Unknown permission or condition"


class LastSuperAdmin(Conflict):
    code, title = "last_super_admin", "The store must keep at least one super admin"


__all__ = ["LastSuperAdmin", "MercatoError", "RoleNotFound", "UnknownPermission"]
