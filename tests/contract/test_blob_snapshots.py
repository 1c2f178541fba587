"""The Blob Storage snapshot store against Azurite (the Azure Storage emulator, real Blob REST API), reached the way
it is in Azure: azure-storage-blob with ManagedIdentityCredential, whose token comes from the local token endpoint
(Azurite's ``--oauth basic`` checks the bearer token's issuer, audience and expiry, and needs HTTPS).

Azurite is installed by the Makefile (``make test`` sets AZURITE_BLOB); elsewhere this test is skipped, in CI
(CI=true) it fails.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from fastapi import FastAPI

from computeplane.code_snapshot import snapshot_directory
from computeplane.snapshot_archive import digest_of
from shared.adapters.blob_snapshots import BlobSnapshotStore
from shared.adapters.clock import SystemClock
from shared.adapters.credentials import forget_credentials
from shared.adapters.identity_grants import SqliteIdentityGrants, new_job_secret
from shared.adapters.token_endpoint import HOST_IDENTITY_VARIABLES_TO_DROP, create_token_endpoint_app
from shared.adapters.token_signer import TokenSigner
from shared.domain.identity import user_assigned_from_arm_id
from tests.contract.uvicorn_server import running_uvicorn
from tests.e2e.server import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "devstoreaccount1"  # Azurite's account name (its key is not used: identity only)
APP_IDENTITY = user_assigned_from_arm_id(f"/subscriptions/{uuid.UUID(int=7)}/resourcegroups/rg-cp/providers/"
                                         "Microsoft.ManagedIdentity/userAssignedIdentities/computeplane")


def azurite_blob() -> str | None:
    for candidate in (os.environ.get("AZURITE_BLOB"), str(REPO_ROOT / ".azurite/node_modules/.bin/azurite-blob")):
        if candidate and Path(candidate).is_file() and shutil.which("node"):
            return candidate
    return None


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
                   .not_valid_after(now + dt.timedelta(hours=1))
                   .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                  critical=False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture(scope="module")
def azurite_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    command = azurite_blob()
    if command is None:
        message = "Azurite is not installed (make installs it in .azurite; or set AZURITE_BLOB)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    directory = tmp_path_factory.mktemp("azurite")
    cert, key = self_signed_certificate(directory)
    port = free_port()
    log = open(directory / "azurite.log", "wb")  # noqa: SIM115 - owned by the child process
    process = subprocess.Popen([command, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location",
                                str(directory / "data"), "--oauth", "basic", "--cert", str(cert), "--key", str(key),
                                "--skipApiVersionCheck", "--silent"], stdout=log, stderr=subprocess.STDOUT)
    url = f"https://127.0.0.1:{port}/{ACCOUNT}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url, verify=str(cert), timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"Azurite did not start:\n{(directory / 'azurite.log').read_text()}") \
                        from None
                time.sleep(0.2)
        yield url, cert
    finally:
        process.kill()  # its state is a temporary directory: nothing to shut down cleanly
        process.wait(timeout=10)
        log.close()


@pytest.fixture
def app_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process as the Function App: a managed identity served by the local token endpoint."""
    grants = SqliteIdentityGrants(tmp_path / "grants.sqlite")
    signer = TokenSigner(tmp_path / "keys", tenant_id=str(uuid.UUID(int=42)))
    secret = new_job_secret()
    grants.grant(secret, "control-plane", "ws/app", [APP_IDENTITY], None)
    parent = FastAPI()
    parent.mount("/identity", create_token_endpoint_app(grants, signer, SystemClock()))
    with running_uvicorn(parent) as base:
        for name in (*HOST_IDENTITY_VARIABLES_TO_DROP, "MSI_ENDPOINT", "MSI_SECRET", "AZURE_CLIENT_ID"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("IDENTITY_ENDPOINT", f"{base}/identity/app-service/token")
        monkeypatch.setenv("IDENTITY_HEADER", secret)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        forget_credentials()
        yield
        forget_credentials()


def test_snapshots_are_stored_once_per_digest_in_blob_storage_through_the_managed_identity(
        azurite_url: tuple[str, Path], app_identity: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url, cert = azurite_url
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # Azurite's self-signed certificate, trusted for this test
    container = f"snapshots{uuid.uuid4().hex[:8]}"
    store = BlobSnapshotStore.from_settings(url, container, APP_IDENTITY.client_id)
    store.create_container()  # infra/app/storage.bicep creates it in Azure

    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "train.py").write_text("print('hi')\n")
    archive = snapshot_directory(tmp_path / "p").archive
    digest = digest_of(archive)
    assert not store.exists("team-a", digest) and store.get("team-a", digest) is None
    assert store.put("team-a", digest, archive) is True
    assert store.put("team-a", digest, archive) is False  # If-None-Match: *, not a second copy
    assert store.exists("team-a", digest) and store.get("team-a", digest) == archive
    assert store.get("team-b", digest) is None
