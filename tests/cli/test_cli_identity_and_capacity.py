"""``cluster identity``, ``cluster preempt-node``, ``job logs --follow``, ``vm-sizes`` and ``quota`` against a real
server."""

from __future__ import annotations

import json
from collections.abc import Callable

from typer.testing import Result

from tests.cli.direct_api import api_get
from tests.e2e.server import Server

RunCli = Callable[..., Result]


def test_identity_add_show_and_remove(run_cli: RunCli, unique_name: Callable[[str], str]) -> None:
    name = unique_name("ident")
    assert run_cli("cluster", "create", name, "-s", "STANDARD_D2_V2", "--max-nodes", "1", "--wait").exit_code == 0
    added = run_cli("cluster", "identity", "add", name, "--identities", "[system]")
    assert added.exit_code == 0, added.output
    assert "SystemAssigned" in added.stdout
    shown = json.loads(run_cli("-o", "json", "cluster", "identity", "show", name).stdout)
    assert shown["type"] == "SystemAssigned" and shown["default_client_id"]
    assert run_cli("cluster", "identity", "remove", name).exit_code == 0
    again = run_cli("cluster", "identity", "remove", name)
    assert again.exit_code == 1 and "no identity" in again.stderr


def test_create_with_a_user_assigned_identity(run_cli: RunCli, shared_server: Server,
                                              unique_name: Callable[[str], str]) -> None:
    name = unique_name("uami")
    identity = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/ml-rg/providers/"
                "Microsoft.ManagedIdentity/userAssignedIdentities/trainer")
    created = run_cli("cluster", "create", name, "-s", "STANDARD_D2_V2", "--max-nodes", "1",
                      "--assign-identity", identity)
    assert created.exit_code == 0, created.output
    view = api_get(f"{shared_server.api()}/clusters/{name}")["identity"]
    assert view["type"] == "UserAssigned"
    assert [i["resource_id"].lower() for i in view["user_assigned_identities"]] == [identity.lower()]


def test_preempt_a_low_priority_node(run_cli: RunCli, unique_name: Callable[[str], str]) -> None:
    name = unique_name("lowpri")
    created = run_cli("cluster", "create", name, "-s", "STANDARD_D2_V2", "--max-nodes", "1", "--min-nodes", "1",
                      "-p", "lowpriority", "--wait")
    assert created.exit_code == 0, created.output
    assert "idle 1" in created.stderr  # --wait waited for min_nodes ready nodes
    node_id = json.loads(run_cli("-o", "json", "cluster", "nodes", name).stdout)[0]["node_id"]
    preempted = run_cli("cluster", "preempt-node", name, node_id)
    assert preempted.exit_code == 0, preempted.output
    assert "preempted" in preempted.stdout
    missing = run_cli("cluster", "preempt-node", name, "no-such-node")
    assert missing.exit_code == 2 and "no-such-node" in missing.stderr


def test_logs_follow_prints_the_output_until_the_job_ends(run_cli: RunCli, unique_name: Callable[[str], str]) -> None:
    name = unique_name("follow")
    assert run_cli("cluster", "create", name, "-s", "STANDARD_D2_V2", "--max-nodes", "1").exit_code == 0
    program = "import time\nfor i in range(3):\n    print('tick', i, flush=True)\n    time.sleep(0.3)"
    job_id = json.loads(run_cli("-o", "json", "job", "submit", "-c", name, "--", "python", "-c", program).stdout)["id"]
    followed = run_cli("job", "logs", job_id, "--follow")
    assert followed.exit_code == 0, followed.output
    assert followed.stdout == "tick 0\ntick 1\ntick 2\n"
    assert "Completed" in followed.stderr


def test_vm_sizes_and_quota(run_cli: RunCli, shared_server: Server) -> None:
    sizes = run_cli("vm-sizes", "list", "-o", "json")
    assert sizes.exit_code == 0
    assert json.loads(sizes.stdout) == api_get(f"{shared_server.url}/api/vm-sizes")
    assert "Standard_D2_v2" in run_cli("vm-sizes", "list", "--location", "eastus").stdout
    quota = run_cli("-o", "json", "quota", "show")
    assert quota.exit_code == 0
    assert json.loads(quota.stdout) == api_get(f"{shared_server.url}/api/quotas")
    usages = run_cli("quota", "usages")
    assert usages.exit_code == 0 and "low priority" in usages.stdout
