"""How ComputePlane talks to Cosmos DB: which credential, which client options, which failures are worth a retry.

In Azure the control plane signs in with its managed identity (the account has key auth disabled). Locally the
Cosmos API is served on a loopback address (``@vercel/cosmosdb-server``, or Microsoft's emulator), which takes the
emulator key and a self-signed certificate.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import urlsplit

from azure.core.credentials import TokenCredential
from azure.core.exceptions import ServiceRequestError, ServiceResponseError
from azure.core.pipeline import PipelineRequest
from azure.cosmos import CosmosClient
from azure.cosmos.exceptions import CosmosClientTimeoutError, CosmosHttpResponseError
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter
from urllib3.exceptions import InsecureRequestWarning

from shared.adapters.credentials import azure_credential
from shared.config import Settings
from shared.domain.errors import TransientError

_T = TypeVar("_T")

CosmosCredential = TokenCredential | str

# The key every Cosmos DB emulator accepts. Microsoft publishes it in the emulator's documentation: it is a public
# constant, not a secret, and it is only ever sent to a loopback endpoint (see ``is_emulator_endpoint``).
EMULATOR_KEY = "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})

# @vercel/cosmosdb-server answers a point read of a missing document with a 500 (its partition-key check reads a
# property of the missing document) unless the request says it may cross partitions; then it looks the document
# up by id and partition key and answers 404, as Azure does. Sent to the emulator only.
EMULATOR_HEADERS = {"x-ms-documentdb-query-enablecrosspartition": "true"}


def emulator_batch_partition_keys(request: PipelineRequest[Any]) -> None:
    """``raw_request_hook`` of the emulator's client: @vercel/cosmosdb-server reads a transactional batch's partition
    key from each operation (400 "Failed to parse x-ms-documentdb-partitionkey" without one), while Azure, and so
    the SDK, give it once, in the request's header. Each operation is given the header's value. Emulator only."""
    http = request.http_request
    if str(http.headers.get("x-ms-cosmos-is-batch-request", "")).lower() != "true":
        return
    partition_key = http.headers.get("x-ms-documentdb-partitionkey")
    operations = json.loads(http.body or "[]")
    for operation in operations:
        operation.setdefault("partitionKey", partition_key)
    http.set_json_body(operations)

# Throttled, timed out, "retry with", unavailable: another try may succeed. Every other status is permanent.
TRANSIENT_STATUS_CODES = frozenset({408, 429, 449, 503})

# The SDK's own retries, per request: on 429 (reads and writes) it waits what the service asks
# (x-ms-retry-after-ms), at most SDK_RETRY_TOTAL times and SDK_RETRY_BACKOFF_MAX_SECONDS in all (a query nests two
# such loops). Only the 429 policy follows these options: a connection that could not be made is retried up to 3
# times, a 503 once after 500 ms (reads and writes), a 408 or read timeout for reads only (a write may have landed).
SDK_RETRY_TOTAL = 9
SDK_RETRY_BACKOFF_MAX_SECONDS = 30
CONNECTION_TIMEOUT_SECONDS = 10
# Every store call, its SDK retries included, ends within this (CosmosClientTimeoutError, a transient failure):
# nested query retries could otherwise wait for minutes, past the Functions timeout and the HTTP front end's limit.
OPERATION_TIMEOUT_SECONDS = 30

# Ours, around idempotent reads and queries, once the SDK has given up on a request.
READ_ATTEMPTS = 3
READ_BACKOFF_INITIAL_SECONDS = 0.2
READ_BACKOFF_MAX_SECONDS = 2.0


def is_emulator_endpoint(endpoint: str) -> bool:
    return (urlsplit(endpoint).hostname or "").lower() in LOOPBACK_HOSTS


def cosmos_endpoint(settings: Settings) -> str:
    if not settings.cosmos_endpoint:
        raise ValueError("COSMOS__accountEndpoint (or COSMOS_ENDPOINT) must be set when COMPUTEPLANE_STORE=cosmos")
    return settings.cosmos_endpoint


def cosmos_credential(settings: Settings) -> CosmosCredential:
    """The emulator key for a loopback endpoint; otherwise the managed identity: the user-assigned one named by
    AZURE_CLIENT_ID, or whatever DefaultAzureCredential finds (system-assigned identity, a developer's login)."""
    if is_emulator_endpoint(cosmos_endpoint(settings)):
        return EMULATOR_KEY
    return azure_credential(settings.azure_client_id)  # the one factory every Azure client uses


def create_cosmos_client(endpoint: str, credential: CosmosCredential, transport: Any = None) -> CosmosClient:
    """A client with our retry options. Its constructor reads the account over the network: call on first use.
    ``transport`` replaces the HTTP transport (tests put a fault-injecting one there)."""
    options: dict[str, Any] = {
        "retry_total": SDK_RETRY_TOTAL,
        "retry_backoff_max": SDK_RETRY_BACKOFF_MAX_SECONDS,
        "connection_timeout": CONNECTION_TIMEOUT_SECONDS,
    }
    if transport is not None:
        options["transport"] = transport
    if not is_emulator_endpoint(endpoint):
        return CosmosClient(endpoint, credential, **options)
    _ignore_unverified_tls_warnings(endpoint)
    # The emulator's certificate is self-signed and it only listens on loopback: nothing to verify it against.
    return CosmosClient(endpoint, credential, connection_verify=False, headers=EMULATOR_HEADERS,
                        raw_request_hook=emulator_batch_partition_keys, **options)


def _ignore_unverified_tls_warnings(endpoint: str) -> None:
    """urllib3 warns on every unverified request, long after the client was created, so a ``catch_warnings``
    around the constructor would not silence them; this filter matches the emulator's host only, so an
    unverified request to any other host still warns."""
    host = urlsplit(endpoint).hostname or ""
    warnings.filterwarnings("ignore", category=InsecureRequestWarning,
                            message=f"Unverified HTTPS request is being made to host '{re.escape(host)}'")


def is_transient(error: BaseException) -> bool:
    if isinstance(error, CosmosHttpResponseError):
        return error.status_code in TRANSIENT_STATUS_CODES
    return isinstance(error, ServiceRequestError | ServiceResponseError | CosmosClientTimeoutError)


@contextmanager
def transient_errors(operation: str) -> Iterator[None]:
    """Transient failures leave as ``TransientError`` (the message is redelivered, the handler tries again with
    fresh state); every other error is permanent and leaves unchanged."""
    try:
        yield
    except Exception as error:
        if is_transient(error):
            status = getattr(error, "status_code", None)
            raise TransientError(f"cosmos {operation}: {type(error).__name__} {status or ''}".rstrip()) from error
        raise


def retry_read(operation: str, read: Callable[[], _T]) -> _T:
    """Run an idempotent read (a point read, a whole query, create-if-missing) again after a transient failure.
    Writes are not retried here: a conditional write whose answer was lost is settled by the caller re-reading."""
    retrying = Retrying(retry=retry_if_exception(is_transient), stop=stop_after_attempt(READ_ATTEMPTS),
                        wait=wait_exponential_jitter(multiplier=READ_BACKOFF_INITIAL_SECONDS,
                                                     max=READ_BACKOFF_MAX_SECONDS,
                                                     jitter=READ_BACKOFF_INITIAL_SECONDS),
                        reraise=True)
    with transient_errors(operation):
        return retrying(read)
