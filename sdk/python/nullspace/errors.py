"""Exceptions raised by the nullspace SDK.

Every error the server reports becomes one exception class per error code, all subclasses of
:class:`NullspaceError`. Each carries ``code`` (the API error code, e.g. ``"not_found"``),
``message`` (the server's human-readable message), ``status`` (the HTTP status, or ``None``
when no response was received) and ``retryable``.

Mistakes the SDK can see before sending a request are raised as the built-in ``TypeError``
(wrong type) or ``ValueError`` (bad value) instead.
"""

from __future__ import annotations

from typing import Dict, Optional, Type

# Every class here is public; ``nullspace`` re-exports them all (its ``__all__``).


class NullspaceError(Exception):
    """Base class of every error reported by the nullspace server or its transport.

    Attributes:
        code: the API error code (``"not_found"``, ``"quota_exceeded"``, ...).
        message: the human-readable message.
        status: the HTTP status of the response, or ``None`` if no response was received.
        retryable: whether repeating the same request may succeed.
    """

    #: The error code this class stands for (the base class has none of its own).
    default_code: str = "internal"
    #: The HTTP status the server uses for :attr:`default_code`.
    default_status: Optional[int] = None

    code: str
    message: str
    status: Optional[int]
    retryable: bool

    def __init__(
        self,
        message: str,
        *,
        code: Optional[str] = None,
        status: Optional[int] = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code if code is not None else self.default_code
        self.status = status if status is not None else self.default_status
        self.retryable = retryable

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code!r}, message={self.message!r}, "
            f"status={self.status!r}, retryable={self.retryable!r})"
        )


class InvalidArgumentError(NullspaceError):
    """The request was malformed or a value was refused (``invalid_argument``, HTTP 400)."""

    default_code = "invalid_argument"
    default_status: Optional[int] = 400


class UnauthenticatedError(NullspaceError):
    """The API key is missing, unknown or revoked (``unauthenticated``, HTTP 401)."""

    default_code = "unauthenticated"
    default_status: Optional[int] = 401


class PermissionDeniedError(NullspaceError):
    """The key is valid but may not do this (``permission_denied``, HTTP 403)."""

    default_code = "permission_denied"
    default_status: Optional[int] = 403


class NotFoundError(NullspaceError):
    """The volume, file or other object does not exist for this tenant (``not_found``, HTTP 404)."""

    default_code = "not_found"
    default_status: Optional[int] = 404


class AlreadyExistsError(NullspaceError):
    """The object to create already exists (``already_exists``, HTTP 409)."""

    default_code = "already_exists"
    default_status: Optional[int] = 409


class ConflictError(NullspaceError):
    """A precondition failed, e.g. a stale ``if_match`` etag (``conflict``, HTTP 409)."""

    default_code = "conflict"
    default_status: Optional[int] = 409


class VolumeInUseError(NullspaceError):
    """The volume is attached to a live sandbox; delete with ``force=True`` (``volume_in_use``, 409)."""

    default_code = "volume_in_use"
    default_status: Optional[int] = 409


class PayloadTooLargeError(NullspaceError):
    """The request body is larger than the server accepts (``payload_too_large``, HTTP 413)."""

    default_code = "payload_too_large"
    default_status: Optional[int] = 413


class QuotaExceededError(NullspaceError):
    """The write would take the volume past its cap; nothing was changed (``quota_exceeded``, 507)."""

    default_code = "quota_exceeded"
    default_status: Optional[int] = 507


class ResourceExhaustedError(NullspaceError):
    """A tenant or server limit other than a volume's cap was reached; the message names it
    (``resource_exhausted``, HTTP 429). Nothing was changed."""

    default_code = "resource_exhausted"
    default_status: Optional[int] = 429


class UnavailableError(NullspaceError):
    """The server is temporarily unable to answer (``unavailable``, HTTP 503). Retryable."""

    default_code = "unavailable"
    default_status: Optional[int] = 503


class InternalError(NullspaceError):
    """The server failed unexpectedly, or sent an answer the SDK cannot read (``internal``, 500)."""

    default_code = "internal"
    default_status: Optional[int] = 500


class APIConnectionError(UnavailableError):
    """The server could not be reached, or the connection failed or timed out mid-request.

    ``status`` is ``None`` (no response was received) and the message names the URL.
    """

    default_status = None


_BY_CODE: Dict[str, Type[NullspaceError]] = {
    cls.default_code: cls
    for cls in (
        InvalidArgumentError,
        UnauthenticatedError,
        PermissionDeniedError,
        NotFoundError,
        AlreadyExistsError,
        ConflictError,
        VolumeInUseError,
        PayloadTooLargeError,
        QuotaExceededError,
        ResourceExhaustedError,
        UnavailableError,
        InternalError,
    )
}

_BY_STATUS: Dict[int, Type[NullspaceError]] = {
    400: InvalidArgumentError,
    401: UnauthenticatedError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    429: ResourceExhaustedError,
    500: InternalError,
    502: UnavailableError,
    503: UnavailableError,
    504: UnavailableError,
    507: QuotaExceededError,
}


def error_class_for_code(code: Optional[str], status: Optional[int] = None) -> Type[NullspaceError]:
    """Return the exception class for an API error ``code`` (falling back on the HTTP ``status``)."""
    if code is not None and code in _BY_CODE:
        return _BY_CODE[code]
    if status is not None:
        if status in _BY_STATUS:
            return _BY_STATUS[status]
        if 400 <= status < 500:
            return InvalidArgumentError
        if status >= 500:
            return InternalError
    return NullspaceError
