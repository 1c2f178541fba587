"""What the ARM routes need beyond the handlers' ports, built once per container from its settings.

Settings (all optional locally):
- ``COMPUTEPLANE_ARM_WORKSPACES``, ``COMPUTEPLANE_ARM_SUBSCRIPTION``: the workspace mapping (``scope.py``);
- ``COMPUTEPLANE_ARM_AUTH``: ``local`` (the default where ``computeplane serve`` runs) or ``entra`` (the default
  in Azure); with ``entra``, ``COMPUTEPLANE_ARM_TENANT_ID`` and ``COMPUTEPLANE_ARM_AUDIENCE`` are required;
- ``COMPUTEPLANE_ARM_AUDIENCE``: ComputePlane's own audience. Locally it defaults to the origin the client called
  (``https://127.0.0.1:7071``), the ``resourceManager`` the metadata document declares, which is what every client
  asks a token for.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Request

from shared.adapters.token_signer import LOCAL_TENANT_ID, TokenSigner
from shared.api.arm.scope import WorkspaceMapping
from shared.api.arm.tokens import EntraTokens, LocalTokens, TokenRefused
from shared.api.auth import ApiKeys
from shared.api.deps import container_of
from shared.config import Settings

if TYPE_CHECKING:
    from shared.bootstrap import Container


class InvalidArmSetting(ValueError):
    """A COMPUTEPLANE_ARM_* setting that cannot work; ``serve`` reports it at start."""


@dataclass(frozen=True)
class ArmContext:
    mapping: WorkspaceMapping
    local: LocalTokens | None
    entra: EntraTokens | None
    api_keys: ApiKeys | None  # locally: what the token route accepts as its secret
    tenant_id: str
    configured_audience: str | None

    def audience(self, request: Request) -> str:
        return self.configured_audience or origin(request)

    def checker(self) -> LocalTokens | EntraTokens:
        checker = self.local or self.entra
        if checker is None:
            raise TokenRefused("the ARM API is not configured here: set COMPUTEPLANE_ARM_TENANT_ID and "
                               "COMPUTEPLANE_ARM_AUDIENCE (COMPUTEPLANE_ARM_AUTH=entra)")
        return checker


def origin(request: Request) -> str:
    """Where the client reached the ARM API: ``https://127.0.0.1:7071`` locally, ``https://<app>/api/arm`` in Azure."""
    return f"{request.url.scheme}://{request.url.netloc}{request.scope.get('root_path', '')}"


_built: tuple[object, ArmContext] | None = None
_lock = threading.Lock()


def arm_context(request: Request) -> ArmContext:
    return arm_context_of(container_of(request))


def arm_context_of(current: Container) -> ArmContext:
    """The ARM context of a container, built from its settings once."""
    global _built
    with _lock:
        if _built is None or _built[0] is not current:
            _built = (current, _build(current.settings, current.api_keys))
        return _built[1]


def _build(settings: Settings, api_keys: ApiKeys | None) -> ArmContext:
    mode = settings.arm_auth or ("local" if api_keys is not None else "entra")
    if mode not in ("local", "entra"):
        raise InvalidArmSetting(f"COMPUTEPLANE_ARM_AUTH: must be local or entra, got {mode!r}")
    audience = settings.arm_audience
    tenant = settings.arm_tenant_id
    local = entra = None
    if mode == "local":
        local = LocalTokens(TokenSigner(settings.data_dir / "keys"))
    elif tenant and audience:
        entra = EntraTokens(tenant_id=tenant, audience=audience)
    try:
        mapping = WorkspaceMapping.from_settings(settings.arm_workspaces, settings.arm_subscription)
    except ValueError as error:
        raise InvalidArmSetting(str(error)) from None
    return ArmContext(mapping=mapping, local=local, entra=entra, api_keys=api_keys,
                      tenant_id=tenant or LOCAL_TENANT_ID, configured_audience=audience)
