"""The v1 SDK's exception for compute targets (``azureml.exceptions.ComputeTargetException``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from computeplane.errors import ComputePlaneError, ServerUnreachable


class ComputeTargetException(Exception):
    """Raised for a missing cluster, an invalid configuration or a request the server refused.

    ``message`` is the text (as v1); ``code`` the API's error code when the server answered (else None).
    """

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@contextmanager
def raised_as_compute_target_exception() -> Iterator[None]:
    """API refusals become ComputeTargetException (as v1's "Received bad response from Resource Provider");
    an unreachable server stays a ServerUnreachable, as v1 lets network errors through."""
    try:
        yield
    except ServerUnreachable:
        raise
    except ComputePlaneError as error:
        raise ComputeTargetException(f"{error.code}: {error.message}", error.code) from error
