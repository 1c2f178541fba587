"""Reading the API directly, to compare with what the CLI prints."""

from __future__ import annotations

import os
from typing import Any

import httpx


def api_get(url: str) -> Any:
    """GET ``url`` with the key the CLI uses (COMPUTEPLANE_API_KEY), if any; the body as parsed JSON."""
    key = os.environ.get("COMPUTEPLANE_API_KEY")
    response = httpx.get(url, headers={"x-functions-key": key} if key else {}, timeout=30)
    response.raise_for_status()
    return response.json()
