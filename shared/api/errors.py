"""One place that maps errors to HTTP: domain errors to their status, validation to 422 naming each field."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic_core import PydanticSerializationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.domain.errors import DomainError, TransientError

RETRY_AFTER_SECONDS = 1


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def domain_error(_: Request, exc: DomainError) -> JSONResponse:
        return JSONResponse(status_code=exc.status, content=exc.to_body())

    @app.exception_handler(TransientError)
    async def store_unavailable(_: Request, exc: TransientError) -> JSONResponse:
        # Throttled or unavailable past the retries (or a race lost ten times): nothing was half-done that a retry
        # could double (writes are conditional, and a write that landed is recognised), so say when to retry.
        return JSONResponse(status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}, content={"error": {
            "code": "ServiceUnavailable",
            "message": f"the state store is busy or unavailable ({exc}); retry in {RETRY_AFTER_SECONDS} s"}})

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [{"field": ".".join(str(p) for p in err["loc"] if p != "body") or "body", "rule": err["msg"]}
                   for err in exc.errors()]
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
