"""ComputePlane answers the requests of a real recorded AmlCompute session with the same keys and JSON types.

The recording (``tests/data/arm/aml_compute_create_and_delete.json``) is azure-ai-ml creating, updating and deleting
a cluster against management.azure.com; its source and what was left out are named in the file. Each request is
sent again to ``computeplane serve --tls``: the status code is the recorded one, an ``Azure-AsyncOperation`` header
is sent where ARM sent one, and every key of the recorded body is in ComputePlane's body with the same JSON type
wherever both are non-null (null is what either side has when a value does not apply).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.arm.harness import TlsServer, running_tls_server

RECORDING = Path(__file__).parent.parent / "data" / "arm" / "aml_compute_create_and_delete.json"
RECORDED_WORKSPACE = ("/subscriptions/00000000-0000-0000-0000-000000000/resourceGroups/00000/providers/"
                      "Microsoft.MachineLearningServices/workspaces/00000")


def json_type(value: Any) -> str:
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array", dict: "object"}[type(value)]


def shape_differences(recorded: Any, ours: Any, path: str = "") -> list[str]:
    if recorded is None or ours is None:
        return []
    if json_type(recorded) != json_type(ours):
        return [f"{path or '.'}: {json_type(recorded)} recorded, {json_type(ours)} here"]
    if isinstance(recorded, dict):
        found: list[str] = []
        for key, value in recorded.items():
            found += [f"{path}.{key}: missing"] if key not in ours else shape_differences(value, ours[key],
                                                                                          f"{path}.{key}")
        return found
    if isinstance(recorded, list) and recorded and ours:
        return shape_differences(recorded[0], ours[0], f"{path}[0]")
    return []


def test_the_comparison_notices_a_missing_key_and_a_changed_type() -> None:
    recorded = {"a": {"b": 1, "c": "x"}, "d": None}
    assert shape_differences(recorded, {"a": {"b": 2.5, "c": "y", "extra": 1}, "d": [1]}) == []
    assert shape_differences(recorded, {"a": {"b": "1", "c": "x"}, "d": None}) == [".a.b: number recorded, string here"]
    assert shape_differences(recorded, {"a": {"b": 1}}) == [".a.c: missing", ".d: missing"]


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    with running_tls_server(tmp_path_factory.mktemp("recorded") / "data") as server:
        yield server


def ssh_public_key() -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def replayed_body(recorded: dict[str, Any] | None, ssh_key: str) -> dict[str, Any] | None:
    """The recorded request with what the copy left out put back (a fresh SSH key) and our workspace's region."""
    if recorded is None:
        return None
    text = json.dumps(recorded).replace("<the recorded ssh-rsa public key, left out>", ssh_key)
    return dict(json.loads(text.replace("eastus2euap", "eastus")))


def test_computeplane_answers_the_recorded_session_with_the_same_keys_and_types(tls_server: TlsServer) -> None:
    entries = json.loads(RECORDING.read_text())["entries"]
    ours_workspace = tls_server.workspace_url("recorded")
    ssh_key, operation_url, problems = ssh_public_key(), None, []
    with tls_server.http(tls_server.token()) as api:
        for number, entry in enumerate(entries):
            if "/computeOperationsStatus/" in entry["path"]:
                assert operation_url is not None
                answer = api.get(operation_url)
                deadline = time.monotonic() + 30  # poll as the client does, until the operation is over
                while answer.json().get("status") == "InProgress" and time.monotonic() < deadline:
                    time.sleep(0.2)
                    answer = api.get(operation_url)
            else:
                answer = api.request(entry["method"], entry["path"].replace(RECORDED_WORKSPACE, ours_workspace),
                                     json=replayed_body(entry["request"], ssh_key))
            where = f"entry {number} ({entry['method']} {entry['path'].split('?')[0][-40:]})"
            assert answer.status_code == entry["status"], f"{where}: {answer.status_code} {answer.text}"
            assert ("azure-asyncoperation" in answer.headers) == entry["async_operation"], where
            operation_url = answer.headers.get("azure-asyncoperation", operation_url)
            if entry["response"] is not None:
                problems += [f"{where}: {p}" for p in shape_differences(entry["response"], answer.json())]
    assert problems == []
