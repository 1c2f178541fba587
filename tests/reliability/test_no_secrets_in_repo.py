"""No secret in the repository: every file git tracks (or would add) is scanned for storage/Service Bus/Cosmos keys
in connection strings, private keys, and long base64 keys assigned to a key-like name."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAX_FILE_BYTES = 2 * 1024 * 1024

# Keys Microsoft publishes for local emulators: not secrets, and the emulators need them verbatim.
PUBLIC_EMULATOR_KEYS = frozenset({
    # The Azure Cosmos DB emulator's well-known master key (docs: "Use the Azure Cosmos DB emulator").
    "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw==",
    # Azurite's devstoreaccount1 key (docs: "Use the Azurite emulator").
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
})

BASE64_KEY = r"[A-Za-z0-9+/]{32,}={0,2}"
RULES: dict[str, re.Pattern[str]] = {
    "a storage or Cosmos account key in a connection string": re.compile(rf"AccountKey=({BASE64_KEY})"),
    "a Service Bus / Event Hubs shared access key": re.compile(rf"SharedAccessKey=({BASE64_KEY})"),
    "a private key": re.compile(r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY( BLOCK)?-----"),
    "a long base64 key assigned to a key-like name": re.compile(
        rf"(?i)(?:key|secret|password|passwd|token|signature|credential)[\w.\-\"']{{0,20}}\s*[:=]\s*[\"']?({BASE64_KEY})"),
}


def _repository_files() -> list[Path]:
    try:
        listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                                capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [ROOT / name for name in listed.decode().split("\0") if name]


def find_secrets(text: str) -> list[tuple[str, str]]:
    """(rule, excerpt) for each secret-looking match that is not a public emulator key."""
    found = []
    for rule, pattern in RULES.items():
        for match in pattern.finditer(text):
            value = match.group(1) if match.groups() and match.group(1) else match.group(0)
            if value not in PUBLIC_EMULATOR_KEYS:
                found.append((rule, f"{match.group(0)[:24]}..."))
    return found


def test_no_file_in_the_repository_holds_a_secret() -> None:
    files = _repository_files()
    assert len(files) > 20
    problems = []
    for path in files:
        if not path.is_file() or path.stat().st_size > MAX_FILE_BYTES:
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary
        problems += [f"{path.relative_to(ROOT)}: {rule}: {excerpt}"
                     for rule, excerpt in find_secrets(data.decode(errors="replace"))]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("text", [
    "DefaultEndpointsProtocol=https;AccountName=prod;AccountKey=" + "q" * 86 + "==;",
    "Endpoint=sb://x.servicebus.windows.net/;SharedAccessKeyName=root;SharedAccessKey=" + "Z" * 44,
    "-----BEGIN RSA " + "PRIVATE KEY-----\nMIIE...",
    'COSMOS_KEY = "' + "A1b2" * 22 + '=="',
    "client_secret: " + "k" * 40,
])
def test_the_scan_finds_what_it_looks_for(text: str) -> None:
    assert find_secrets(text)


@pytest.mark.parametrize("text", [
    "AccountKey=" + sorted(PUBLIC_EMULATOR_KEYS)[0],
    '"integrity": "sha512-' + "a" * 86 + '=="',
    "COSMOS__accountEndpoint=https://example.documents.azure.com",
    "api_key: <your key here>",
])
def test_the_scan_lets_public_and_placeholder_values_pass(text: str) -> None:
    assert not find_secrets(text)
