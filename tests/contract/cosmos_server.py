"""Run ``@vercel/cosmosdb-server`` (the Cosmos DB API in Node, pinned in package.json) as a subprocess for tests."""

from __future__ import annotations

import re
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVER_CLI = REPO_ROOT / "node_modules" / "@vercel" / "cosmosdb-server" / "lib" / "cli.js"
# The server prints this once it listens; with ``-p 0`` the OS picks a free port and this line names it.
_READY = re.compile(r"Ready to accept HTTPS connections at 127\.0\.0\.1:(\d+)")


class CosmosServerUnavailable(Exception):
    """Node or the npm package is not installed: the Cosmos half of the contract suite cannot run here."""


def missing_prerequisite() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed (needed to run @vercel/cosmosdb-server)"
    if not SERVER_CLI.is_file():
        return f"@vercel/cosmosdb-server is not installed ({SERVER_CLI} missing; run `npm ci` in the repo root)"
    return None


@contextmanager
def running_cosmosdb_server(*, start_timeout_seconds: float = 15.0) -> Iterator[str]:
    """Serve the Cosmos API on a free 127.0.0.1 port while the block runs; yields its endpoint (``https://...``).
    The server keeps everything in memory: every run starts empty."""
    reason = missing_prerequisite()
    if reason is not None:
        raise CosmosServerUnavailable(reason)
    node = shutil.which("node")
    assert node is not None
    # Output goes to a file, not a pipe: a pipe nobody drains would block the server once its buffer is full.
    with tempfile.NamedTemporaryFile(prefix="cosmosdb-server-", suffix=".log") as log:
        process = subprocess.Popen([node, str(SERVER_CLI), "-p", "0", "--host", "127.0.0.1"],
                                   stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            endpoint = _wait_until_answering(process, Path(log.name), start_timeout_seconds)
            yield endpoint
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def _wait_until_answering(process: subprocess.Popen[bytes], log: Path, timeout_seconds: float) -> str:
    deadline = time.monotonic() + timeout_seconds
    endpoint: str | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"cosmosdb-server exited with {process.returncode}:\n{_tail(log)}")
        if endpoint is None:
            match = _READY.search(log.read_text(errors="replace"))
            endpoint = f"https://127.0.0.1:{match.group(1)}" if match else None
        if endpoint is not None and _answers(endpoint):
            return endpoint
        time.sleep(0.05)
    raise RuntimeError(f"cosmosdb-server did not answer within {timeout_seconds}s:\n{_tail(log)}")


def _answers(endpoint: str) -> bool:
    """The account read (GET /) is the first request every Cosmos client makes."""
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE  # its certificate is self-signed
    try:
        with urllib.request.urlopen(f"{endpoint}/", timeout=1, context=unverified) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
