"""One place that maps errors to HTTP: domain errors to their status, validation to 422 naming each field.

The domain's errors carry no HTTP status (they travel on queues too); ``HTTP_STATUS`` gives each kind its status
here, and an error the API itself defines registers its own with ``@answers(status)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic_core import PydanticSerializationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.domain.errors import (
    ClusterSpecConflict,
    ComputeTargetNotFound,
    DomainError,
    IdempotencyKeyReused,
    InvalidEvent,
    InvalidField,
    InvalidFields,
    JobExceedsQuota,
    JobNotFound,
    OperationNotAllowed,
    SimulationOnly,
    TransientError,
)

RETRY_AFTER_SECONDS = 1

# The status of each kind of domain error; a subclass not listed answers its nearest listed base's.
HTTP_STATUS: dict[type[DomainError], int] = {
    DomainError: 400,
    InvalidEvent: 400,
    JobExceedsQuota: 400,
    InvalidField: 422,
    ComputeTargetNotFound: 404,
    JobNotFound: 404,
    ClusterSpecConflict: 409,
    OperationNotAllowed: 409,
    IdempotencyKeyReused: 409,
    SimulationOnly: 501,
}

_Error = TypeVar("_Error", bound=type[DomainError])


def answers(status: int) -> Callable[[_Error], _Error]:
    """Class decorator for an error the API defines: the HTTP status it answers."""
    def register(error: _Error) -> _Error:
        HTTP_STATUS[error] = status
        return error
    return register


def status_of(error: DomainError) -> int:
    return next(HTTP_STATUS[kind] for kind in type(error).__mro__ if kind in HTTP_STATUS)


def error_body(error: DomainError) -> dict[str, object]:
    """``{"error": {"code", "message", "details"?}}``: details name each field and its rule where the error has them."""
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if isinstance(error, InvalidFields):
        body["details"] = [{"field": e.field, "rule": e.rule} for e in error.errors]
    elif isinstance(error, InvalidField):
        body["details"] = [{"field": error.field, "rule": error.rule}]
    elif isinstance(error, ClusterSpecConflict):
        body["details"] = [{"field": f, "existing": old, "requested": new}
                           for f, (old, new) in sorted(error.differing.items())]
    elif isinstance(error, JobExceedsQuota) and error.field is not None:
        body["details"] = [{"field": error.field, "rule": error.message}]
    return {"error": body}


def describe_validation_error(err: Mapping[str, Any], content_type: str | None) -> dict[str, str]:
    """One pydantic/FastAPI error as {"field", "rule"}: the field's dotted path (never a byte offset) and a rule a
    user can act on."""
    location = [str(part) for part in err.get("loc", ()) if part != "body"]
    kind = err.get("type")
    if kind == "json_invalid":  # FastAPI puts the character offset where a field name goes
        position = location[0] if location else "?"
        reason = (err.get("ctx") or {}).get("error", "invalid JSON")
        return {"field": "body", "rule": f"malformed JSON at character {position}: {reason}"}
    field = ".".join(location) or "body"
    if kind == "extra_forbidden":
        return {"field": field, "rule": "unknown field: this request does not take it (check the spelling; see "
                                        "/api/docs for the fields it takes)"}
    rule = str(err.get("msg"))
    if field == "body" and "json" not in (content_type or "").lower():
        rule += (f" (the body is read as JSON only with the header Content-Type: application/json; got "
                 f"{content_type or 'none'})")
    return {"field": field, "rule": rule}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def domain_error(_: Request, exc: DomainError) -> JSONResponse:
        return JSONResponse(status_code=status_of(exc), content=error_body(exc))

    @app.exception_handler(TransientError)
    async def store_unavailable(_: Request, exc: TransientError) -> JSONResponse:
        # Throttled or unavailable past the retries (or a race lost ten times): nothing was half-done that a retry
        # could double (writes are conditional, and a write that landed is recognised), so say when to retry.
        return JSONResponse(status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}, content={"error": {
            "code": "ServiceUnavailable",
            "message": f"the state store is busy or unavailable ({exc}); retry in {RETRY_AFTER_SECONDS} s"}})

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [describe_validation_error(err, request.headers.get("content-type")) for err in exc.errors()]
        message = "; ".join(f"{d['field']}: {d['rule']}" for d in details)
        return JSONResponse(status_code=422, content={"error": {"code": "InvalidField", "message": message,
                                                                "details": details}})

    @app.exception_handler(UnicodeEncodeError)
    @app.exception_handler(PydanticSerializationError)
    async def unencodable_text(_: Request, exc: Exception) -> JSONResponse:
        # Raised when a document is serialised for the store, before anything is written.
        return JSONResponse(status_code=422, content={"error": {
            "code": "InvalidField", "message": "body: strings must be valid Unicode text (no lone surrogates)",
            "details": [{"field": "body", "rule": "strings must be valid Unicode text (no lone surrogates)"}]}})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "NotFound", 405: "MethodNotAllowed", 401: "Unauthorized", 403: "Forbidden",
                413: "RequestTooLarge"}.get(exc.status_code, "HttpError")
        return JSONResponse(status_code=exc.status_code, content={"error": {"code": code, "message": str(exc.detail)}},
                            headers=getattr(exc, "headers", None))
