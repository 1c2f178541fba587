"""What a new user's careless input gets, over real HTTP: nothing silently ignored or coerced, every broken rule
reported at once, and messages that name the field and say what to do."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.server import Server, http, start_server

VALID: dict[str, Any] = {"name": "careful", "vm_size": "STANDARD_D2_V2", "max_nodes": 2}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(Path(tmp_path_factory.mktemp("careless")) / "data")
    try:
        assert http.post(f"{server.api()}/clusters", json=VALID).status_code in (200, 202)
        yield server
    finally:
        server.stop()


def details(response: httpx.Response) -> list[dict[str, str]]:
    return response.json()["error"]["details"]  # type: ignore[no-any-return]


def test_an_unknown_field_in_a_job_submit_is_refused_naming_it(srv: Server) -> None:
    answer = http.post(f"{srv.api()}/clusters/careful/jobs", json={"command": ["true"], "timeout": 60})
    assert answer.status_code == 422
    assert [d["field"] for d in details(answer)] == ["timeout"]
    assert "unknown field" in details(answer)[0]["rule"]
    assert http.get(f"{srv.api()}/jobs").json() == []  # nothing was queued


def test_a_patch_of_a_field_that_cannot_change_is_refused_and_changes_nothing(srv: Server) -> None:
    answer = http.patch(f"{srv.api()}/clusters/careful", json={"vm_size": "STANDARD_D3_V2", "max_nodes": 3})
    assert answer.status_code == 422 and [d["field"] for d in details(answer)] == ["vm_size"]
    shown = http.get(f"{srv.api()}/clusters/careful").json()
    assert shown["vm_size"].upper() == "STANDARD_D2_V2" and shown["scale_settings"]["max_nodes"] == 2


@pytest.mark.parametrize("value", [True, "4", 4.5])
def test_node_counts_are_whole_numbers_not_booleans_or_strings(srv: Server, value: object) -> None:
    answer = http.post(f"{srv.api()}/clusters", json=VALID | {"name": "strict", "max_nodes": value})
    assert answer.status_code == 422 and [d["field"] for d in details(answer)] == ["max_nodes"]
    patched = http.patch(f"{srv.api()}/clusters/careful", json={"max_nodes": value})
    assert patched.status_code == 422 and [d["field"] for d in details(patched)] == ["max_nodes"]
    job = http.post(f"{srv.api()}/clusters/careful/jobs", json={"command": ["true"], "node_count": value})
    assert job.status_code == 422 and [d["field"] for d in details(job)] == ["node_count"]


def test_max_nodes_zero_is_valid_as_in_amlcompute_and_the_cluster_warns(srv: Server) -> None:
    answer = http.post(f"{srv.api()}/clusters", json=VALID | {"name": "paused", "max_nodes": 0})
    assert answer.status_code == 202
    assert any("max_nodes is 0" in w for w in answer.json()["warnings"])
    job = http.post(f"{srv.api()}/clusters/paused/jobs", json={"command": ["true"]})
    assert job.status_code == 400
    assert details(job)[0]["field"] == "node_count"
    assert "raise the cluster's max_nodes to 1" in job.json()["error"]["message"]
    assert "computeplane cluster update paused --max-nodes 1" in job.json()["error"]["message"]
    raised = http.patch(f"{srv.api()}/clusters/paused", json={"max_nodes": 1}).json()
    assert not any("max_nodes is 0" in w for w in raised["warnings"])


def test_several_broken_rules_in_one_body_are_all_reported(srv: Server) -> None:
    body = {"name": "1bad", "vm_size": "STANDARD_D2_V2", "max_nodes": -1, "idle_seconds_before_scaledown": -5}
    answer = http.post(f"{srv.api()}/clusters", json=body)
    assert answer.status_code == 422
    assert [d["field"] for d in details(answer)] == ["name", "max_nodes", "idle_seconds_before_scaledown"]
    typed = http.post(f"{srv.api()}/clusters", json=VALID | {"vm_priority": "spot", "min_nodes": "1", "tags": 3})
    assert [d["field"] for d in details(typed)] == ["min_nodes", "vm_priority", "tags"]
    job = http.post(f"{srv.api()}/clusters/careful/jobs",
                    json={"command": [], "max_retries": 500, "environment_variables": {"COMPUTEPLANE_X": "1"}})
    assert [d["field"] for d in details(job)] == ["command", "max_retries", "environment_variables"]


def test_inter_node_communication_takes_the_same_values_from_the_client_and_over_http(srv: Server) -> None:
    from computeplane.client import ComputePlaneClient

    with ComputePlaneClient(srv.url) as client:
        created = client.create_cluster("noib", "STANDARD_D2_V2", 2, inter_node_communication=False).cluster
    assert created["inter_node_communication"] == "Disabled"
    answer = http.post(f"{srv.api()}/clusters", json=VALID | {"name": "boolib", "inter_node_communication": True})
    assert answer.status_code == 422 and "Enabled" in details(answer)[0]["rule"]


def test_unknown_location_for_the_catalogue_is_an_error_not_an_empty_list(srv: Server) -> None:
    answer = http.get(f"{srv.url}/api/vm-sizes", params={"location": "mars"})
    assert answer.status_code == 422
    assert details(answer)[0]["field"] == "location" and "eastus" in details(answer)[0]["rule"]
    assert http.get(f"{srv.url}/api/quotas", params={"location": "mars"}).status_code == 422


def test_malformed_json_and_a_wrong_content_type_are_explained(srv: Server) -> None:
    broken = http.post(f"{srv.api()}/clusters", content=b'{"name": "x", "max_nodes": 2,,}',
                       headers={"content-type": "application/json"})
    assert broken.status_code == 422
    assert details(broken)[0]["field"] == "body"
    assert details(broken)[0]["rule"].startswith("malformed JSON at character ")
    as_text = http.post(f"{srv.api()}/clusters", content=b'{"name": "x"}', headers={"content-type": "text/plain"})
    assert as_text.status_code == 422
    assert "Content-Type: application/json" in as_text.json()["error"]["message"]
    assert "text/plain" in as_text.json()["error"]["message"]


def test_a_patch_below_min_nodes_names_max_nodes(srv: Server) -> None:
    assert http.post(f"{srv.api()}/clusters", json=VALID | {"name": "floor", "min_nodes": 2,
                                                            "max_nodes": 3}).status_code == 202
    answer = http.patch(f"{srv.api()}/clusters/floor", json={"max_nodes": 1})
    assert answer.status_code == 422 and details(answer)[0]["field"] == "max_nodes"
    assert "lower min_nodes in the same update" in details(answer)[0]["rule"]
    raised_min = http.patch(f"{srv.api()}/clusters/floor", json={"min_nodes": 4})
    assert details(raised_min)[0]["field"] == "min_nodes"
