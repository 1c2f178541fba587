"""The seed's identity snippet, unchanged, as a job's command: it gets a token on a SystemAssigned and on a
UserAssigned cluster with the real azure-identity package, and fails clearly on a cluster with no identity."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.e2e.server import Server, http, running_server, wait_for
from tests.e2e.test_lifecycle import cluster, create_cluster, finished, submit

SEED_SNIPPET = """
client_id = os.environ.get('DEFAULT_IDENTITY_CLIENT_ID')
credential = ManagedIdentityCredential(client_id=client_id)
token = credential.get_token('https://storage.azure.com/')
"""
JOB = ("import os, base64, json\nfrom azure.identity import ManagedIdentityCredential\n" + SEED_SNIPPET +
       "payload = token.token.split('.')[1]\n"
       "print('CLAIMS', base64.urlsafe_b64decode(payload + '=' * (-len(payload) % 4)).decode())\n")

UA_1 = ("/subscriptions/11111111-2222-3333-4444-555555555555/resourcegroups/rg-ml/providers/"
        "Microsoft.ManagedIdentity/userAssignedIdentities/trainer")
UA_2 = UA_1.replace("trainer", "reader")


def run_seed_snippet(server: Server, cluster_name: str) -> tuple[dict[str, Any], str]:
    job_id = submit(server, cluster_name, ["python", "-c", JOB])
    done = wait_for(lambda: finished(server, job_id), timeout=60, what="identity job")
    logs = http.get(f"{server.api()}/jobs/{job_id}/logs").json()["logs"]
    return done, logs


def claims_in(logs: str) -> dict[str, Any]:
    line = next(line for line in logs.splitlines() if line.startswith("CLAIMS "))
    return json.loads(line.removeprefix("CLAIMS "))  # type: ignore[no-any-return]


def test_seed_snippet_gets_a_token_for_the_system_assigned_identity(server: Server) -> None:
    created = create_cluster(server, "cpu-cluster", max_nodes=5, identity_type="SystemAssigned").json()
    assert created["identity"]["type"] == "SystemAssigned"
    client_id = created["identity"]["default_client_id"]
    done, logs = run_seed_snippet(server, "cpu-cluster")
    assert done["state"] == "Completed", logs
    claims = claims_in(logs)
    assert claims["aud"] == "https://storage.azure.com/" and claims["appid"] == client_id
    assert claims["oid"] == created["identity"]["principal_ids"][0]


def test_seed_snippet_uses_the_first_user_assigned_identity_as_default(server: Server) -> None:
    created = create_cluster(server, "ua-cluster", identity_type="UserAssigned", identity_id=[UA_1, UA_2]).json()
    assert created["identity"]["default_client_id"] == created["identity"]["client_ids"][0]
    done, logs = run_seed_snippet(server, "ua-cluster")
    assert done["state"] == "Completed", logs
    claims = claims_in(logs)
    assert claims["appid"] == created["identity"]["client_ids"][0]
    assert claims["xms_mirid"].lower() == UA_1.lower()


def test_seed_snippet_fails_clearly_on_a_cluster_without_identity(server: Server) -> None:
    create_cluster(server, "no-identity")
    done, logs = run_seed_snippet(server, "no-identity")
    assert done["state"] == "Failed"
    assert "no managed identity" in logs.lower()


def test_identity_can_be_added_and_removed_on_a_live_cluster(server: Server) -> None:
    create_cluster(server, "later")
    none = http.request("DELETE", f"{server.api()}/clusters/later/identity")
    assert none.status_code == 409 and "no identity assigned" in none.json()["error"]["message"]
    added = http.post(f"{server.api()}/clusters/later/identity", json={"identity_type": "SystemAssigned"})
    assert added.status_code == 200 and added.json()["identity"]["type"] == "SystemAssigned"
    assert cluster(server, "later")["identity"]["default_client_id"] == added.json()["identity"]["default_client_id"]
    both = http.post(f"{server.api()}/clusters/later/identity",
                      json={"identity_type": "UserAssigned", "identity_id": [UA_1]})
    assert both.status_code == 422 and "never both" in both.json()["error"]["message"]
    removed = http.request("DELETE", f"{server.api()}/clusters/later/identity")
    assert removed.status_code == 200 and removed.json()["identity"]["type"] is None


def test_user_assigned_ids_are_stable_across_clusters(server: Server) -> None:
    one = create_cluster(server, "ua-one", identity_type="UserAssigned", identity_id=[UA_1]).json()
    two = create_cluster(server, "ua-two", identity_type="UserAssigned", identity_id=[UA_1.upper().replace(
        "/SUBSCRIPTIONS/", "/subscriptions/")]).json()
    assert one["identity"]["client_ids"] == two["identity"]["client_ids"]


def test_datastore_access_is_checked_with_the_default_identity_before_the_job_starts(tmp_path: Path) -> None:
    denied = "https://deniedaccount.blob.core.windows.net/"
    with running_server(tmp_path / "data", {"COMPUTEPLANE_DENIED_RESOURCES": denied}) as server:
        create_cluster(server, "mounts", identity_type="SystemAssigned")
        create_cluster(server, "bare")
        ok = submit(server, "mounts", ["python", "-c", "print('mounted')"],
                    datastores=["https://storage.azure.com/"], registry="myregistry.azurecr.io")
        assert wait_for(lambda: finished(server, ok), what="job with datastores")["state"] == "Completed"

        refused = submit(server, "mounts", ["python", "-c", "print('never runs')"], datastores=[denied])
        failed = wait_for(lambda: finished(server, refused), what="identity failure")
        assert failed["state"] == "Failed" and failed["reason"].startswith("IdentityTokenError")
        assert "no role assignment" in failed["reason"] and denied in failed["reason"]
        assert "never runs" not in http.get(f"{server.api()}/jobs/{refused}/logs").json()["logs"]

        no_identity = submit(server, "bare", ["true"], datastores=["https://storage.azure.com/"])
        failed = wait_for(lambda: finished(server, no_identity), what="no identity failure")
        assert "no managed identity" in failed["reason"]
        wait_for(lambda: cluster(server, "bare")["node_state_counts"]["running"] == 0, what="node freed")
