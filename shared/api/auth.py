"""API keys for the local runtime: every route but health (and the docs) needs one.

In Azure the Functions host checks function keys (``x-functions-key`` header or ``code`` query) before the app sees
a request. Locally ``computeplane serve`` does the same with keys it creates at first start and keeps, 0600, in the
data directory. A key can be limited to workspaces: another workspace's resources are then forbidden (403), never
shown. Subscription-wide operations (locks, events from other systems) need an unlimited key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger(__name__)

KEY_FILE = "api-keys.json"
OPEN_PATHS = frozenset({"/api/health", "/api/docs", "/api/openapi.json", "/api/docs/oauth2-redirect"})
OPEN_PREFIXES = ("/api/dashboard", "/api/docs/")  # static pages and their assets: they hold no data
UNLIMITED_ONLY_PREFIXES = ("/api/locks", "/api/events")


@dataclass(frozen=True)
class ApiKey:
    name: str
    digest: bytes
    workspaces: frozenset[str] | None  # None: every workspace

    def allows(self, workspace: str) -> bool:
        return self.workspaces is None or workspace in self.workspaces


class ApiKeys:
    def __init__(self, keys: list[tuple[str, str, list[str] | None]]) -> None:
        self._keys = [ApiKey(name, _digest(secret), frozenset(ws) if ws is not None else None)
                      for name, secret, ws in keys]

    def authenticate(self, presented: str) -> ApiKey | None:
        digest = _digest(presented)
        found = None
        for key in self._keys:  # compare with every key, in constant time each
            if hmac.compare_digest(key.digest, digest):
                found = key
        return found


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


class KeyFile(ApiKeys):
    """The keys of a key file, read again when the file changes (checked on each request: one ``stat``), so a key
    added, limited or revoked applies without a restart. A file that cannot be read (half-written by an editor)
    keeps the keys read last."""

    def __init__(self, path: Path, extra_key: str | None = None) -> None:
        self._path, self._extra_key = path, extra_key
        self._version: tuple[int, int] | None = None
        self._refresh_lock = threading.Lock()
        super().__init__(self._read())

    def _read(self) -> list[tuple[str, str, list[str] | None]]:
        stat = self._path.stat()
        entries = json.loads(self._path.read_text())["keys"]
        keys = [(str(e["name"]), str(e["key"]), e.get("workspaces")) for e in entries]
        self._version = (stat.st_mtime_ns, stat.st_size)
        if self._extra_key:
            keys.append(("COMPUTEPLANE_API_KEY", self._extra_key, None))
        return keys

    def authenticate(self, presented: str) -> ApiKey | None:
        self._refresh()
        return super().authenticate(presented)

    def _refresh(self) -> None:
        try:
            stat = self._path.stat()
        except OSError:
            return
        if (stat.st_mtime_ns, stat.st_size) == self._version:
            return
        with self._refresh_lock:
            try:
                ApiKeys.__init__(self, self._read())
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("API keys: cannot read %s (%s); keeping the keys read before", self._path, exc)


def load_or_create_keys(data_dir: Path, extra_key: str | None = None) -> tuple[ApiKeys, Path]:
    """The keys in ``data_dir/api-keys.json``, creating it (0600) with one unlimited key at first start.
    ``extra_key`` (COMPUTEPLANE_API_KEY) is accepted too, for scripts and tests. Edits of the file apply at once."""
    path = data_dir / KEY_FILE
    if not path.exists():
        document = {"keys": [{"name": "default", "key": secrets.token_urlsafe(32), "workspaces": None}]}
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            json.dump(document, file, indent=2)
    return KeyFile(path, extra_key), path


class ApiKeyMiddleware:
    def __init__(self, app: ASGIApp, keys: Callable[[], ApiKeys | None]) -> None:
        self._app, self._keys = app, keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        keys = self._keys() if path.startswith("/api/") and path not in OPEN_PATHS and not path.startswith(
            OPEN_PREFIXES) else None
        if keys is None:
            await self._app(scope, receive, send)
            return
        presented = _presented_key(scope)
        key = keys.authenticate(presented) if presented else None
        if key is None:
            await _deny(401, "Unauthorized", "a valid API key is required: send it as the x-functions-key header "
                                             "(or the code query parameter)", scope, receive, send)
            return
        parts = path.split("/")
        if len(parts) > 3 and parts[2] == "workspaces" and not key.allows(parts[3]):
            await _deny(403, "Forbidden", f"this key is not valid for workspace '{parts[3]}'", scope, receive, send)
            return
        if key.workspaces is not None and path.startswith(UNLIMITED_ONLY_PREFIXES):
            await _deny(403, "Forbidden", "this operation needs a key valid for every workspace", scope, receive,
                        send)
            return
        scope.setdefault("state", {})[_KEY_STATE] = key  # for routes that answer per key (visible workspaces)
        await self._app(scope, receive, send)


_KEY_STATE = "computeplane_api_key"


def request_key(scope: Scope) -> ApiKey | None:
    """The key the middleware accepted for this request; None where no key is checked here (Azure's host checks)."""
    key = scope.get("state", {}).get(_KEY_STATE)
    return key if isinstance(key, ApiKey) else None


def _presented_key(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"x-functions-key":
            return bytes(value).decode("latin-1")
    codes = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("code")
    return codes[0] if codes else None


async def _deny(status: int, code: str, message: str, scope: Scope, receive: Receive, send: Send) -> None:
    await JSONResponse({"error": {"code": code, "message": message}}, status_code=status)(scope, receive, send)
