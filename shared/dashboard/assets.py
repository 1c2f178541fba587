"""The dashboard's files, read from package data. Only the files listed here are served (no path from a request
ever reaches the file system)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

CONTENT_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
}
# No inline scripts, no other origin: the page talks only to this API.
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Content-Type": self.content_type, "Content-Security-Policy": CONTENT_SECURITY_POLICY,
                "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}


@cache
def asset(name: str) -> Asset | None:
    """The file ``name`` ("" is the page itself), or None when it is not one of the dashboard's files."""
    name = name or "index.html"
    content_type = CONTENT_TYPES.get(name)
    if content_type is None:
        return None
    body = resources.files("shared.dashboard").joinpath("static", name).read_bytes()
    return Asset(body, content_type)
