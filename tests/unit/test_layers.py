"""Layering, enforced rather than hoped for: the domain is pure; Azure SDKs live only in adapters and triggers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


FORBIDDEN_IN_DOMAIN = ("azure", "shared.adapters", "shared.handlers", "shared.api", "shared.local", "shared.bootstrap",
                       "sqlite3", "httpx", "fastapi", "starlette", "uvicorn", "subprocess", "socket", "requests")


@pytest.mark.parametrize("path", modules("shared/domain"), ids=lambda p: p.name)
def test_the_domain_imports_no_infrastructure(path: Path) -> None:
    bad = sorted(m for m in imports_of(path) if m.startswith(FORBIDDEN_IN_DOMAIN))
    assert bad == [], f"{path.relative_to(ROOT)} imports {bad}"


AZURE_ALLOWED = ("shared/adapters", "functions", "function_app.py", "shared/local")


@pytest.mark.parametrize("path", [*modules("shared"), *modules("functions"), ROOT / "function_app.py"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_azure_packages_appear_only_in_adapters_and_triggers(path: Path) -> None:
    relative = str(path.relative_to(ROOT))
    if relative.startswith(AZURE_ALLOWED):
        return
    bad = sorted(m for m in imports_of(path) if m.startswith("azure"))
    assert bad == [], f"{relative} imports {bad}"


@pytest.mark.parametrize("path", modules("shared/handlers"), ids=lambda p: p.name)
def test_handlers_depend_on_ports_not_adapters(path: Path) -> None:
    bad = sorted(m for m in imports_of(path) if m.startswith(("shared.adapters", "shared.api", "azure")))
    assert bad == [], f"{path.relative_to(ROOT)} imports {bad}"


def test_the_python_client_does_not_need_the_server_packages() -> None:
    for path in modules("computeplane"):
        if path.name in ("cli.py", "cli_simulate.py", "cli_token.py"):
            continue  # `serve`, `simulate`, `token issue` run server code on purpose, imported lazily in the command
        bad = sorted(m for m in imports_of(path) if m.startswith(("shared", "azure", "functions")))
        assert bad == [], f"{path.relative_to(ROOT)} imports {bad}"
