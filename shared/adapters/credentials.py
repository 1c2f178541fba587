"""The one place the control plane gets its own Azure AD credential (Service Bus, Cosmos DB, provisioning).

In Azure the app runs with a managed identity, so it uses ``ManagedIdentityCredential`` directly: no probing of
environment variables, the Azure CLI or developer tools, and no surprise identity when several are available.
Elsewhere (a developer's machine, CI) ``DefaultAzureCredential`` picks up whatever login is there.

A credential is built once per client id and kept for the process: the SDK caches its tokens and refreshes them
before they expire, so building one per call would fetch a new token per call.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping

from azure.core.credentials import TokenCredential
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

# App Service / Functions set these for a managed identity (IDENTITY_ENDPOINT, and MSI_ENDPOINT on older hosts);
# WEBSITE_INSTANCE_ID is set on every App Service instance, even before an identity endpoint is.
AZURE_HOST_MARKERS = ("IDENTITY_ENDPOINT", "MSI_ENDPOINT", "WEBSITE_INSTANCE_ID")

_credentials: dict[tuple[str | None, bool], TokenCredential] = {}
_lock = threading.Lock()


def running_in_azure(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return any(env.get(name) for name in AZURE_HOST_MARKERS)


def azure_credential(client_id: str | None, env: Mapping[str, str] | None = None) -> TokenCredential:
    """The process's credential for ``client_id`` (a user-assigned identity; None for the system-assigned one)."""
    in_azure = running_in_azure(env)
    key = (client_id or None, in_azure)
    with _lock:
        credential = _credentials.get(key)
        if credential is None:
            credential = _credentials[key] = _new_credential(client_id or None, in_azure)
        return credential


def forget_credentials() -> None:
    """Drop the cached credentials (tests; a process that changed identity)."""
    with _lock:
        _credentials.clear()


def _new_credential(client_id: str | None, in_azure: bool) -> TokenCredential:
    if in_azure:
        return ManagedIdentityCredential(client_id=client_id)
    return DefaultAzureCredential(managed_identity_client_id=client_id)
