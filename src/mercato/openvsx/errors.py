"""Typed errors of the Open VSX adapter. Every answer also carries ``error`` (the detail):
``ovsx`` and Theia read an error's text from ``error`` (Open VSX's ResultJson)."""

from __future__ import annotations

from mercato.kit.errors import (
    Conflict,
    Forbidden,
    NotFound,
    Unauthenticated,
)


class NamespaceNotFound(NotFound):
    code, title = "namespace_not_found", "No such namespace"


class ExtensionNotFound(NotFound):
    code, title = "extension_not_found", "No such extension"


class FileNotFound(NotFound):
    code, title = "extension_file_not_found", "No such file of the extension"


class AlreadyPublished(Conflict):
    """The text ends in "is already published." — ``ovsx publish --skip-duplicate`` matches it."""

    code, title = "extension_version_exists", "The version is already published"


class NamespaceTaken(Conflict):
    code, title = "namespace_taken", "The namespace belongs to someone else"


class NamespaceCreationRefused(Forbidden):
    code, title = "namespace_creation_refused", "Only store admins create namespaces"


class PurchaseRequired(Forbidden):
    code, title = "purchase_required", "Buy the extension first"


class RegistryTokenInvalid(Unauthenticated):
    code, title = "registry_token_invalid", "The personal registry token is invalid or revoked"


class RegistryTokenNotFound(NotFound):
    code, title = "registry_token_not_found", "No such registry token"
