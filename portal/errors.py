"""One exception tree for the whole system.

Web handlers turn ``PortalError`` subclasses into 4xx pages or JSON, the CLI
turns them into one line on stderr and a non-zero exit.
"""

from __future__ import annotations


class PortalError(Exception):
    """Base class for errors a user or operator can act on."""

    status = 400


class SettingsError(PortalError):
    """A setting is missing or malformed."""


class NotFound(PortalError):
    status = 404


class Forbidden(PortalError):
    status = 403


class Conflict(PortalError):
    """The request clashes with the current state (slot taken, stale version)."""

    status = 409


class PolicyError(PortalError):
    """The business's rules forbid this (notice window passed, cap reached)."""

    status = 422


class ValidationError(PortalError):
    """Input failed validation; ``fields`` maps a field path to its message."""

    status = 422

    def __init__(self, message: str = "Invalid input", fields: dict[str, str] | None = None):
        super().__init__(message)
        self.fields = fields or {}


class UnsafeUrl(ValidationError):
    """A URL the portal will not call: not http(s), or its host is a private or internal address."""


class UnresolvedHost(UnsafeUrl):
    """The URL's host does not resolve, so it could not be checked (may be temporary)."""


class ProviderError(PortalError):
    """A message provider refused or failed a send."""

    status = 502

    def __init__(self, message: str, *, code: str | int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after


class TransientProviderError(ProviderError):
    """Worth retrying: 429, 5xx, connection refused before the request went out."""


class PermanentProviderError(ProviderError):
    """Never retry: invalid number, opted out, rejected by the provider."""


class UnknownDeliveryError(ProviderError):
    """The request may have gone out (timeout after sending): reconcile, don't resend."""
