"""What the Python client raises: one class per kind of failure, each carrying the API's code, message and details."""

from __future__ import annotations

from typing import Any


class ComputePlaneError(Exception):
    """An error answered by the API (``status`` is the HTTP status) or found by the client (``status`` is None)."""

    def __init__(self, status: int | None, code: str, message: str,
                 details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" if self.code else self.message


class InvalidInputError(ComputePlaneError):
    """The request was refused as it stands (400, 422 and other 4xx): fix the input and try again."""


class AccessDeniedError(InvalidInputError):
    """The server requires a key (401/403): pass ``api_key`` / ``--api-key`` / ``COMPUTEPLANE_API_KEY``."""


class NotFoundError(ComputePlaneError):
    """404: the cluster, job or endpoint does not exist (``code`` says which: ``ComputeTargetNotFound``, ...)."""


class ConflictError(ComputePlaneError):
    """409: a different spec under the same name, or an operation the current state forbids."""


class ServerError(ComputePlaneError):
    """5xx: the server failed; the same request may work later."""


class ServerUnreachable(ComputePlaneError):
    """No HTTP answer at all: nothing listens at ``endpoint``, or the connection timed out."""

    def __init__(self, endpoint: str, reason: str) -> None:
        super().__init__(None, "ServerUnreachable",
                         f"cannot reach the ComputePlane server at {endpoint} ({reason}); is `computeplane serve` "
                         "running there? Set --endpoint or COMPUTEPLANE_ENDPOINT to another address.")
        self.endpoint = endpoint
        self.reason = reason


class OperationFailed(ComputePlaneError):
    """A cluster or job being waited for reached Failed/Canceled or reported errors. ``resource`` is its last body."""

    def __init__(self, code: str, message: str, resource: dict[str, Any]) -> None:
        super().__init__(None, code, message)
        self.resource = resource


class WaitTimeout(ComputePlaneError):
    """A wait ran out of time. ``last`` is the last body seen (None if nothing was read)."""

    def __init__(self, what: str, timeout_seconds: float, last: dict[str, Any] | None) -> None:
        super().__init__(None, "WaitTimeout", f"timed out after {timeout_seconds:g} s waiting for {what}")
        self.last = last
