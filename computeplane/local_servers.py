"""Where the ``computeplane serve`` processes of this user keep their data and keys, by port.

``serve`` records itself at start (and removes its entry when it stops) in ``$XDG_STATE_HOME/computeplane/
servers.json`` (default ``~/.local/state/computeplane``; the directory 0700, the file 0600). The CLI and the client
read it to find the key of a server on this machine whatever ``--data-dir`` it was started with, so a walk-through
never depends on the directory it is run from. The file holds paths, never a key. Stdlib only.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
REGISTRY_FILE = "servers.json"
DATA_DIR_ENV = "COMPUTEPLANE_DATA_DIR"
DEFAULT_DATA_DIR = ".computeplane"
KEY_FILE = "api-keys.json"


def state_dir(env: dict[str, str] | None = None) -> Path:
    env = dict(os.environ) if env is None else env
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "computeplane"


def _registry_path() -> Path:
    return state_dir() / REGISTRY_FILE


def _read() -> dict[str, Any]:
    try:
        document = json.loads(_registry_path().read_text())
    except (OSError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


def _write(document: dict[str, Any]) -> None:
    directory = state_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=".servers-")  # created 0600
    try:
        with os.fdopen(descriptor, "w") as file:
            json.dump(document, file, indent=2)
        os.replace(temporary, directory / REGISTRY_FILE)
    finally:
        Path(temporary).unlink(missing_ok=True)


def record_server(port: int, data_dir: Path, key_file: Path) -> None:
    """Called by ``serve`` once it has its keys: port -> where its data and keys are."""
    document = _read()
    document[str(port)] = {"data_dir": str(data_dir.resolve()), "key_file": str(key_file.resolve()),
                           "pid": os.getpid()}
    with contextlib.suppress(OSError):  # a read-only home must not stop the server; discovery then falls back
        _write(document)


def forget_server(port: int) -> None:
    """Called by ``serve`` as it stops: its entry goes, unless another server has taken the port since."""
    document = _read()
    entry = document.get(str(port))
    if isinstance(entry, dict) and entry.get("pid") == os.getpid():
        del document[str(port)]
        with contextlib.suppress(OSError):
            _write(document)


@dataclass(frozen=True)
class DiscoveredKey:
    key: str
    source: str  # the file it was read from


def _local_port(endpoint: str) -> int | None:
    parts = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
    if (parts.hostname or "") not in LOOPBACK_HOSTS:
        return None
    try:
        return parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None


def key_files_for(endpoint: str) -> list[Path]:
    """Where a key for ``endpoint`` may be, best first: the file of the server recorded on its port, then
    $COMPUTEPLANE_DATA_DIR, then ./.computeplane. Empty when the endpoint is not on this machine."""
    port = _local_port(endpoint)
    if port is None:
        return []
    candidates = []
    entry = _read().get(str(port))
    if isinstance(entry, dict) and isinstance(entry.get("key_file"), str):
        candidates.append(Path(entry["key_file"]))
    candidates.append(Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR) / KEY_FILE)
    return candidates


def discover_key(endpoint: str) -> DiscoveredKey | None:
    """The first non-empty key of the first key file found for ``endpoint``, or None."""
    for path in key_files_for(endpoint):
        try:
            keys = json.loads(path.read_text())["keys"]
            key = str(keys[0]["key"]) if keys else ""
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            continue
        if key:
            return DiscoveredKey(key, str(path))
    return None
