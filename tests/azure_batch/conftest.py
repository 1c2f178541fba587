"""Fixtures of the Azure Batch stand-in (tests/azure_batch/fixtures.py), for the tests in this directory."""

from tests.azure_batch.fixtures import (  # noqa: F401 (fixtures pytest finds by name)
    azure_env,
    batch_provider,
    certificate,
    standin,
    token_endpoint,
)
