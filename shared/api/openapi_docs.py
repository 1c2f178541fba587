"""``/api/docs``: Swagger UI served from a pinned package (no CDN), and an OpenAPI document that says how to
authenticate (the ``x-functions-key`` header, so "Authorize" works) and what every error body looks like."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import swagger_ui_bundle
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse, Response

DOCS_PATH = "/api/docs"
SECURITY_SCHEME = "FunctionKey"
ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css", "favicon-32x32.png": "image/png"}
OPEN_OPERATIONS = {("/api/health", "get")}

ERROR_BODY_SCHEMA: dict[str, Any] = {
    "title": "ErrorBody", "type": "object", "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
        "code": {"type": "string", "description": "a stable code, e.g. ComputeTargetNotFound, InvalidField"},
        "message": {"type": "string", "description": "what went wrong; for bad input it names the field and rule"},
        "details": {"type": "array", "description": "for InvalidField: each field and the rule it broke",
                    "items": {"type": "object", "properties": {"field": {"type": "string"},
                                                               "rule": {"type": "string"}}}}}}},
}
ERRORS = {
    "401": "no key, or not a valid one (Unauthorized)",
    "403": "the key is not valid for this workspace, or the operation needs an unlimited key (Forbidden)",
    "404": "no such cluster, job or resource (e.g. ComputeTargetNotFound, JobNotFound)",
    "409": "conflicts with what exists (e.g. ComputeTargetSpecConflict, IdempotencyKeyReused, a cluster still "
           "deleting)",
    "413": "the body is larger than the limit (RequestTooLarge)",
    "422": "bad input: InvalidField names each field and the rule it broke",
    "503": "the state store is busy or unavailable; retry after the Retry-After header (ServiceUnavailable)",
}


def install_docs(app: FastAPI) -> None:
    """The app must be created with ``docs_url=None``; the OpenAPI document stays at ``app.openapi_url``."""
    asset_dir = Path(swagger_ui_bundle.swagger_ui_path)
    openapi_url = app.openapi_url or "/api/openapi.json"

    @app.get(DOCS_PATH, include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=openapi_url, title=f"{app.title} API",
                                   swagger_js_url=f"{DOCS_PATH}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{DOCS_PATH}/swagger-ui.css",
                                   swagger_favicon_url=f"{DOCS_PATH}/favicon-32x32.png",
                                   oauth2_redirect_url=f"{DOCS_PATH}/oauth2-redirect",
                                   swagger_ui_parameters={"persistAuthorization": False})

    @app.get(f"{DOCS_PATH}/oauth2-redirect", include_in_schema=False)
    def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(DOCS_PATH + "/{name}", include_in_schema=False)
    def swagger_asset(name: str) -> Response:
        if name not in ASSETS:  # only the listed files: no request path reaches the file system
            return Response(status_code=404)
        return FileResponse(asset_dir / name, media_type=ASSETS[name], headers={"Cache-Control": "max-age=86400"})

    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_security_and_errors(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def document_security_and_errors(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {})[SECURITY_SCHEME] = {
        "type": "apiKey", "in": "header", "name": "x-functions-key",
        "description": "A function key (in Azure) or a key from <data dir>/api-keys.json (computeplane serve)"}
    components.setdefault("schemas", {})["ErrorBody"] = ERROR_BODY_SCHEMA
    schema["security"] = [{SECURITY_SCHEME: []}]
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if (path, method) in OPEN_OPERATIONS:
                operation["security"] = []
                continue
            for status in _errors_of(path, method, operation):
                operation.setdefault("responses", {})[status] = {
                    "description": ERRORS[status],
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
    for name in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422 body, replaced by ours where unused
        if f'"#/components/schemas/{name}"' not in json.dumps(schema):
            components["schemas"].pop(name, None)
    return schema


def _errors_of(path: str, method: str, operation: dict[str, Any]) -> list[str]:
    statuses = ["401", "403", "503"]
    if "{" in path.replace("{workspace}", ""):  # a named cluster, job or node that may not exist
        statuses.append("404")
    if method in ("post", "patch", "put", "delete") or "409" in operation.get("responses", {}):
        statuses.append("409")
    if "requestBody" in operation:
        statuses.append("413")
    if "requestBody" in operation or operation.get("parameters"):
        statuses.append("422")
    return sorted(statuses)
