"""Bad input at the HTTP edge: 422 with a JSON body naming the field and the rule; nothing stored is lost."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.server import Server, http, start_server

UA = ("/subscriptions/11111111-2222-3333-4444-555555555555/resourcegroups/rg/providers/"
      "Microsoft.ManagedIdentity/userAssignedIdentities/ident")
VALID: dict[str, Any] = {"name": "valid-cluster", "vm_size": "STANDARD_D2_V2", "max_nodes": 4}


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(Path(tmp_path_factory.mktemp("validation")) / "data")
    try:
        yield srv
    finally:
        srv.stop()


@pytest.mark.parametrize(("changes", "field", "rule"), [
    ({"name": "ab"}, "name", "3"),
    ({"name": "1abc"}, "name", "start with a letter"),
    ({"name": "abc-1"}, "name", "-"),
    ({"name": "amlcompute"}, "name", "reserved"),
    ({"max_nodes": None}, "max_nodes", "max nodes count is mandatory"),
    ({"min_nodes": 5}, "max_nodes", "min nodes"),
    ({"vm_priority": "spot"}, "vm_priority", "dedicated"),
    ({"vm_size": "Standard_Z99"}, "vm_size", ""),
    ({"vnet_name": "v"}, "vnet", ""),
    ({"admin_user_password": "Passw0rd!x12"}, "admin_username", ""),
    ({"admin_username": "azureuser", "admin_user_password": "alllowercase"}, "admin_user_password", "3"),
    ({"identity_type": "Both"}, "identity_type", ""),
    ({"identity_type": "UserAssigned"}, "identity_id", "non-empty"),
    ({"identity_type": "UserAssigned", "identity_id": ["/not/an/arm/id"]}, "identity_id", "resource id"),
    ({"identity_id": [UA]}, "identity_id", "UserAssigned"),
    ({"max_nodes": 101}, "max_nodes", "inter_node_communication"),
    ({"remote_login_port_public_access": "Sometimes"}, "remote_login_port_public_access", ""),
    ({"unknown_field": 1}, "unknown_field", ""),
])
def test_each_cluster_rule_is_a_422_naming_the_field(shared_server: Server, changes: dict[str, Any], field: str,
                                                      rule: str) -> None:
    body = {k: v for k, v in (VALID | changes).items() if v is not None}
    response = http.post(f"{shared_server.api()}/clusters", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert any(field in d["field"] for d in error["details"]), error
    assert rule.lower() in error["message"].lower(), error


def test_more_than_100_nodes_needs_inter_node_communication_disabled(shared_server: Server) -> None:
    body = VALID | {"name": "wide", "max_nodes": 1000, "inter_node_communication": "Disabled"}
    assert http.post(f"{shared_server.api()}/clusters", json=body).status_code == 202


@pytest.mark.parametrize(("job", "field"), [
    ({"command": []}, "command"),
    ({"command": "python -c 1"}, "command"),
    ({"command": ["true"], "node_count": 0}, "node_count"),
    ({"command": ["true"], "environment_variables": {"COMPUTEPLANE_ATTEMPT": "9"}}, "environment_variables"),
    ({"command": ["true"], "environment_variables": {f"V{i}": "x" for i in range(300)}}, "environment_variables"),
    ({"command": ["x" * 70_000]}, "command"),
])
def test_bad_jobs_are_refused_naming_the_field_and_the_cluster_is_unchanged(shared_server: Server,
                                                                           job: dict[str, Any], field: str) -> None:
    http.post(f"{shared_server.api()}/clusters", json=VALID)
    before = http.get(f"{shared_server.api()}/clusters/valid-cluster").json()
    response = http.post(f"{shared_server.api()}/clusters/valid-cluster/jobs", json=job)
    assert response.status_code == 422, response.text
    assert any(field in d["field"] for d in response.json()["error"]["details"])
    after = http.get(f"{shared_server.api()}/clusters/valid-cluster").json()
    assert after["scale_settings"] == before["scale_settings"] and after["target_node_count"] == 0


def test_an_invalid_cloud_event_is_refused_with_the_reason(shared_server: Server) -> None:
    response = http.post(f"{shared_server.url}/api/events", content=b'{"specversion": "1.0", "id": "x"}',
                          headers={"content-type": "application/cloudevents+json"})
    assert response.status_code == 400
    assert "not a CloudEvent" in response.json()["error"]["message"]


def test_a_body_over_one_megabyte_is_refused_with_413(shared_server: Server) -> None:
    huge = {"name": "x" * (1024 * 1024 + 10)}
    response = http.post(f"{shared_server.api()}/clusters", json=huge)
    assert response.status_code == 413 and "limit" in response.json()["error"]["message"]


def test_an_event_over_the_service_bus_size_is_refused(shared_server: Server) -> None:
    event = {"specversion": "1.0", "id": "big", "source": "/test", "type": "computeplane.job.submit",
             "subject": "workspaces/default/clusters/valid-cluster", "data": {"command": ["x" * 300_000]}}
    response = http.post(f"{shared_server.url}/api/events", json=event)
    assert response.status_code == 400 and "262144" in response.json()["error"]["message"]
