"""Request bodies are bounded: a client cannot make the control plane read (and hold) an unbounded body."""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from computeplane.snapshot_archive import MAX_ARCHIVE_BYTES

MAX_BODY_BYTES = 1024 * 1024
SNAPSHOT_PATH_PART = "/snapshots/"  # code snapshot uploads: archives up to MAX_ARCHIVE_BYTES


class BodyTooLarge(BaseException):
    """Raised from ``receive`` once a streamed body passes the limit."""


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self._app, self._max = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        limit = MAX_ARCHIVE_BYTES if SNAPSHOT_PATH_PART in scope.get("path", "") else self._max
        declared = next((int(v) for k, v in scope.get("headers", []) if k == b"content-length" and v.isdigit()), 0)
        if declared > limit:
            await self._refuse(declared, limit, scope, receive, send)
            return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge
            return message

        try:
            await self._app(scope, counting_receive, send)
        except BodyTooLarge:
            await self._refuse(seen, limit, scope, receive, send)

    async def _refuse(self, size: int, limit: int, scope: Scope, receive: Receive, send: Send) -> None:
        body = {"error": {"code": "RequestTooLarge",
                          "message": f"body: {size} bytes or more; the limit is {limit} bytes"}}
        await JSONResponse(body, status_code=413)(scope, receive, send)
