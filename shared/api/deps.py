"""How routes reach the ports: the container ``create_app`` was given (tests may override ``get_deps``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from shared.handlers.deps import Deps

if TYPE_CHECKING:
    from shared.bootstrap import Container

# The app's container, given lazily: in Azure it is built from the settings on the first request, never at import.
ContainerSource = Callable[[], "Container"]


def container_of(request: Request) -> Container:
    source: ContainerSource = request.app.state.container
    return source()


def get_deps(request: Request) -> Deps:
    return container_of(request).deps


DepsDep = Annotated[Deps, Depends(get_deps)]
