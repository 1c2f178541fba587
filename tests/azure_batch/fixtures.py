"""Fixtures: the Batch stand-in over HTTPS, the control plane's token endpoint, and an environment in which the real
azure-identity SDK gets the control plane's tokens from that endpoint and trusts the stand-in's CA."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.adapters.azure_batch.clients import AzureClients
from shared.adapters.azure_batch.provider import AzureBatchNodeProvider
from shared.adapters.clock import SystemClock
from shared.adapters.credentials import forget_credentials
from shared.adapters.token_endpoint import HOST_IDENTITY_VARIABLES_TO_DROP
from shared.config import AzureBatchSettings
from tests.azure_batch.serving import (
    ACCOUNT,
    NODE_RESOURCE_GROUP,
    SUBSCRIPTION,
    StandIn,
    TokenEndpoint,
    batch_standin,
    control_plane_token_endpoint,
)
from tests.azure_batch.tls import ServerCertificate, make_server_certificate

HOST_IDENTITY_MARKERS = ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "MSI_SECRET", "WEBSITE_INSTANCE_ID")


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> ServerCertificate:
    return make_server_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def token_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenEndpoint]:
    with control_plane_token_endpoint(tmp_path_factory.mktemp("control-plane-identity")) as endpoint:
        yield endpoint


@pytest.fixture
def standin(tmp_path: Path, certificate: ServerCertificate) -> Iterator[StandIn]:
    with batch_standin(tmp_path / "batch-nodes", certificate) as running:
        yield running


@pytest.fixture
def azure_env(monkeypatch: pytest.MonkeyPatch, certificate: ServerCertificate,
              token_endpoint: TokenEndpoint) -> Iterator[pytest.MonkeyPatch]:
    """This process as a control plane outside Azure: DefaultAzureCredential finds the managed identity through
    the IMDS protocol of the local token endpoint; requests trusts the stand-in's CA."""
    for name in (*HOST_IDENTITY_VARIABLES_TO_DROP, *HOST_IDENTITY_MARKERS):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", token_endpoint.base_url)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate.ca_file))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    forget_credentials()
    yield monkeypatch
    forget_credentials()


def batch_settings(standin: StandIn) -> AzureBatchSettings:
    return AzureBatchSettings(subscription_id=SUBSCRIPTION, resource_group=NODE_RESOURCE_GROUP, account_name=ACCOUNT,
                              account_endpoint=standin.url, arm_endpoint=standin.url)


@pytest.fixture
def batch_provider(azure_env: pytest.MonkeyPatch, standin: StandIn,
                   token_endpoint: TokenEndpoint) -> Iterator[AzureBatchNodeProvider]:
    settings = batch_settings(standin)
    provider = AzureBatchNodeProvider(settings, AzureClients.build(settings, token_endpoint.identity.client_id),
                                      SystemClock(), "eastus")
    yield provider
    provider.close()  # its keep-alive connections would hold the stand-in's shutdown
