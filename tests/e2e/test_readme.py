"""The README's walk-throughs, run as written (code blocks parsed from README.md, in order) against a real
``computeplane serve``, with the installed ``computeplane`` and ``python`` on PATH and no key given: what a new
user copies must work, key discovery included."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.server import Server, start_server

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DEFAULT_ADDRESS = "127.0.0.1:7071"
# Sections whose blocks are a walk-through to run; the others show commands for Azure or the shell prompt.
WALK_THROUGHS = ("Walk-through (curl)", "CLI walk-through", "Python client")
# Lines a running test replaces: it starts the server itself, and runs with the installed tools on PATH already.
SETUP_LINES = (re.compile(r"^make run &"), re.compile(r"^source \.venv/bin/activate"))


@dataclass(frozen=True)
class CodeBlock:
    section: str
    language: str
    text: str


def readme_blocks() -> list[CodeBlock]:
    blocks, section = [], ""
    for match in re.finditer(r"^## (?P<heading>[^\n]+)$|^```(?P<lang>\w+)\n(?P<body>.*?)^```$", README.read_text(),
                             re.MULTILINE | re.DOTALL):
        if match["heading"]:
            section = match["heading"].strip()
        elif section in WALK_THROUGHS:
            blocks.append(CodeBlock(section, match["lang"], match["body"]))
    return blocks


def as_run_here(block: CodeBlock, address: str) -> str:
    lines = [line for line in block.text.splitlines() if not any(p.match(line) for p in SETUP_LINES)]
    return "\n".join(lines).replace(DEFAULT_ADDRESS, address) + "\n"


def test_the_readme_has_the_walk_throughs_this_test_runs() -> None:
    found = [(b.section, b.language) for b in readme_blocks()]
    assert found == [("Walk-through (curl)", "bash"), ("CLI walk-through", "bash"), ("Python client", "python"),
                     ("Python client", "python")]


@pytest.fixture
def readme_server(tmp_path: Path) -> Server:  # type: ignore[misc]
    (tmp_path / "server").mkdir()
    server = start_server(tmp_path / "server" / "data")  # not in the walk-through's directory: found by its port
    try:
        yield server
    finally:
        server.stop()


def test_the_readme_walk_throughs_run_in_order_on_a_fresh_server(readme_server: Server, tmp_path: Path) -> None:
    address = readme_server.url.removeprefix("http://")
    workdir = tmp_path / "user"  # a user's directory with the repository's examples, and no .computeplane in it
    shutil.copytree(REPO / "examples", workdir / "examples")
    bin_dir = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if k not in ("COMPUTEPLANE_API_KEY", "COMPUTEPLANE_DATA_DIR")}
    env |= {"PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", "COMPUTEPLANE_ENDPOINT": readme_server.url}
    outputs = []
    for block in readme_blocks():
        script = as_run_here(block, address)
        command = ["bash", "-euo", "pipefail", "-c", script] if block.language == "bash" else \
            [sys.executable, "-c", script]
        done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=240,
                              check=False)
        assert done.returncode == 0, (f"README block in '{block.section}' failed ({done.returncode}):\n{script}\n"
                                      f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}")
        outputs.append(done.stdout)
    curl, cli, client, v1 = outputs
    assert '"name":"curlcluster"' in curl.replace(" ", "") and "Unauthorized" not in curl
    assert "hello from a node" in cli and "hello from node 1 of 2, running the project's own code" in cli
    assert "hello from a node" in client and "hello from node 0 of 2, running the project's own code" in client
    assert "hello from node 0 of 1, running the project's own code" in v1
