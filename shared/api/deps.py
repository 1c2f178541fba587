"""How routes reach the ports: the process's container, built on first use (tests override ``get_deps``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from shared.handlers.deps import Deps


def get_deps() -> Deps:
    from shared.bootstrap import container  # the composition root, imported late so the API stays light

    return container().deps


DepsDep = Annotated[Deps, Depends(get_deps)]
