"""ARM's error shape, ``{"error": {"code", "message", "details"}}``, with today's codes and messages.

Differences from ``/api``, as ARM clients expect: a broken field is 400 (ARM never answers 422) and each detail is
an ARM error naming the field in ARM's terms as ``target``; an expired or missing token is 401
``InvalidAuthenticationToken``; a token for another workspace is 403 ``AuthorizationFailed``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec

from fastapi.responses import JSONResponse, Response

from shared.api.arm.shapes import ARM_PATHS
from shared.api.arm.tokens import TokenRefused
from shared.api.errors import RETRY_AFTER_SECONDS, answers, status_of
from shared.domain.errors import ClusterSpecConflict, DomainError, InvalidField, TransientError

P = ParamSpec("P")


@answers(400)
class ApiVersionMissing(DomainError):
    code = "MissingApiVersionParameter"


def arm_error(status: int, code: str, message: str, details: list[dict[str, Any]] | None = None,
              headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "details": details or []}},
                        status_code=status, headers=headers)


def response_of(error: Exception) -> JSONResponse:
    if isinstance(error, InvalidField):
        target = ARM_PATHS.get(error.field, error.field)
        return arm_error(400, error.code, error.message,
                         [{"code": error.code, "target": target, "message": error.rule}])
    if isinstance(error, ClusterSpecConflict):
        return arm_error(status_of(error), error.code, error.message,
                         [{"code": error.code, "target": ARM_PATHS.get(f, f),
                           "message": f"existing {old!r}, requested {new!r}"}
                          for f, (old, new) in sorted(error.differing.items())])
    if isinstance(error, DomainError):
        return arm_error(status_of(error), error.code, error.message)
    if isinstance(error, TokenRefused):
        return arm_error(401, "InvalidAuthenticationToken", str(error),
                         headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    if isinstance(error, PermissionError):
        return arm_error(403, "AuthorizationFailed", str(error))
    assert isinstance(error, TransientError)
    return arm_error(503, "ServiceUnavailable", f"the state store is busy or unavailable ({error}); retry in "
                     f"{RETRY_AFTER_SECONDS} s", headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def arm_errors(route: Callable[P, Response]) -> Callable[P, Response]:
    """Every ARM route answers its errors in ARM's shape (the app's handlers answer /api's)."""
    @functools.wraps(route)
    def answer(*args: P.args, **kwargs: P.kwargs) -> Response:
        try:
            return route(*args, **kwargs)
        except (DomainError, TokenRefused, PermissionError, TransientError) as error:
            return response_of(error)

    return answer
