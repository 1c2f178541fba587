"""Layering, enforced rather than hoped for: the domain is pure; Azure SDKs live only in adapters and triggers."""

from __future__ import annotations

import ast
import importlib
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


HTTP_STATUS_NAMES = ("status", "http_status", "status_code")


def _error_classes_with_a_status(path: Path) -> list[str]:
    """Classes whose body assigns an int to an HTTP-status-like name: an error that knows its HTTP answer."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ClassDef):
            continue
        for statement in node.body:
            if (isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Constant)
                    and isinstance(statement.value.value, int)
                    and any(isinstance(t, ast.Name) and t.id in HTTP_STATUS_NAMES for t in statement.targets)):
                found.append(node.name)
    return found


OUTSIDE_THE_API = [p for p in modules("shared") if not str(p.relative_to(ROOT)).startswith("shared/api")]


@pytest.mark.parametrize("path", OUTSIDE_THE_API, ids=lambda p: str(p.relative_to(ROOT)))
def test_errors_map_to_http_only_in_the_api(path: Path) -> None:
    assert _error_classes_with_a_status(path) == [], f"{path.relative_to(ROOT)}: the HTTP status belongs in shared/api"
    bad = sorted(m for m in imports_of(path) if m.startswith("shared.api"))
    assert bad == [] or str(path.relative_to(ROOT)).startswith(("shared/local", "shared/bootstrap")), bad


def test_every_domain_error_answers_an_http_status_and_carries_none() -> None:
    for module in ("arm.errors", "arm.operations", "arm.scope", "locks", "snapshots"):
        importlib.import_module(f"shared.api.{module}")  # the API's own errors register their statuses on load
    from shared.api.errors import status_of
    from shared.domain.errors import DomainError

    def subclasses(cls: type[DomainError]) -> list[type[DomainError]]:
        return [cls, *(s for sub in cls.__subclasses__() for s in subclasses(sub))]

    for kind in subclasses(DomainError):
        assert not hasattr(kind, "status"), kind
        assert 400 <= status_of(kind.__new__(kind)) < 600, kind


# Transport limits: Service Bus messages (256 KB standard, 100 MB premium), Cosmos DB items (2 MB).
TRANSPORT_LIMITS = {256 * 1024, 100 * 1024 * 1024, 2 * 1024 * 1024}


def _number(node: ast.expr) -> int | None:
    """The value of an integer expression of literals (``256 * 1024``), else None."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult | ast.Add | ast.Pow):
        left, right = _number(node.left), _number(node.right)
        if left is not None and right is not None:
            return left * right if isinstance(node.op, ast.Mult) else left + right if isinstance(node.op, ast.Add) \
                else int(left ** right)
    return None


@pytest.mark.parametrize("path", modules("shared/domain"), ids=lambda p: p.name)
def test_the_domain_defines_no_transport_limits(path: Path) -> None:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            assert _number(node.value) not in TRANSPORT_LIMITS, \
                f"{path.relative_to(ROOT)}:{node.lineno} defines a transport limit; it belongs by its port"
