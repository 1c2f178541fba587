"""``computeplane cluster ...`` in-process (typer's CliRunner) against a real ``computeplane serve``."""

from __future__ import annotations

import json
from collections.abc import Callable

from typer.testing import Result

from tests.cli.direct_api import api_get
from tests.e2e.server import Server

RunCli = Callable[..., Result]


def test_create_with_wait_shows_progress_and_exits_0(run_cli: RunCli, unique_name: Callable[[str], str]) -> None:
    name = unique_name("cpu")
    result = run_cli("cluster", "create", name, "-s", "STANDARD_D2_V2", "--max-nodes", "4", "--wait")
    assert result.exit_code == 0, result.output
    assert f"{name}: Succeeded, allocation Steady, nodes 0/0" in result.stderr
    assert f"Cluster '{name}' is ready" in result.stderr
    assert "Succeeded" in result.stdout and name in result.stdout


def test_output_json_prints_exactly_the_api_body(run_cli: RunCli, shared_server: Server,
                                                 unique_name: Callable[[str], str]) -> None:
    name = unique_name("json")
    assert run_cli("cluster", "create", "-n", name, "-s", "STANDARD_D2_V2", "--max-nodes", "2", "--wait").exit_code == 0
    shown = run_cli("--output", "json", "cluster", "show", name)
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout) == api_get(f"{shared_server.api()}/clusters/{name}")
    listed = run_cli("cluster", "list", "-o", "json")  # the global option also works after the command
    assert json.loads(listed.stdout) == api_get(f"{shared_server.api()}/clusters")


def test_bad_input_exits_2_naming_the_field(run_cli: RunCli, unique_name: Callable[[str], str]) -> None:
    result = run_cli("cluster", "create", unique_name("bad"), "-s", "STANDARD_D2_V2", "--max-nodes", "-1")
    assert result.exit_code == 2
    assert "max_nodes" in result.stderr and "Traceback" not in result.output


def test_missing_required_flag_is_a_usage_error(run_cli: RunCli) -> None:
    result = run_cli("cluster", "create", "nosize", "--max-nodes", "1")
    assert result.exit_code == 2 and "--vm-size" in result.output


def test_missing_cluster_exits_1_with_the_api_message(run_cli: RunCli) -> None:
    result = run_cli("cluster", "show", "no-such-cluster")
    assert result.exit_code == 1
    assert "ComputeTargetNotFound" in result.stderr and "no-such-cluster" in result.stderr


def test_a_different_spec_under_the_same_name_exits_1_naming_the_difference(
        run_cli: RunCli, unique_name: Callable[[str], str]) -> None:
    name = unique_name("twice")
    assert run_cli("cluster", "create", name, "-s", "STANDARD_D2_V2", "--max-nodes", "2").exit_code == 0
    same = run_cli("cluster", "create", name, "-s", "STANDARD_D2_V2", "--max-nodes", "2")
    assert same.exit_code == 0 and "Found existing cluster" in same.stderr
    different = run_cli("cluster", "create", name, "-s", "STANDARD_D2_V2", "--max-nodes", "3")
    assert different.exit_code == 1 and "max_nodes: existing 2, requested 3" in different.stderr


def test_unreachable_server_exits_3_naming_the_address(run_cli: RunCli) -> None:
    result = run_cli("cluster", "list", endpoint="http://127.0.0.1:9")
    assert result.exit_code == 3
    assert "http://127.0.0.1:9" in result.stderr and "Traceback" not in result.output


def test_global_options_after_the_command_win_over_those_before_it(run_cli: RunCli) -> None:
    result = run_cli("cluster", "list", "--endpoint", "http://127.0.0.1:9")
    assert result.exit_code == 3 and "http://127.0.0.1:9" in result.stderr
    listed = run_cli("cluster", "list", "--output=json", "--workspace", "empty-workspace")
    assert listed.exit_code == 0 and json.loads(listed.stdout) == []
    assert run_cli("cluster", "list", "-o", "yaml").exit_code == 2


def test_update_nodes_and_delete_with_wait(run_cli: RunCli, unique_name: Callable[[str], str]) -> None:
    name = unique_name("life")
    assert run_cli("cluster", "create", name, "-s", "STANDARD_D2_V2", "--max-nodes", "2", "-p", "lowpriority",
                   "--tag", "team=ml", "--wait").exit_code == 0
    updated = run_cli("-o", "json", "cluster", "update", name, "--max-nodes", "3",
                      "--idle-seconds-before-scaledown", "60")
    assert updated.exit_code == 0, updated.output
    body = json.loads(updated.stdout)
    assert body["scale_settings"]["max_nodes"] == 3 and body["tags"] == {"team": "ml"}
    assert body["vm_priority"] == "lowpriority"
    nodes = run_cli("cluster", "nodes", name, "-o", "json")
    assert nodes.exit_code == 0 and json.loads(nodes.stdout) == []
    assert run_cli("cluster", "delete", name).exit_code == 2  # not interactive: --yes is required
    deleted = run_cli("cluster", "delete", name, "--yes", "--wait")
    assert deleted.exit_code == 0, deleted.output
    assert f"Cluster '{name}' is deleted" in deleted.stderr
    assert run_cli("cluster", "show", name).exit_code == 1


def test_name_positional_or_option_but_not_two_different_ones(run_cli: RunCli) -> None:
    assert run_cli("cluster", "show").exit_code == 2
    assert run_cli("cluster", "show", "one", "--name", "other").exit_code == 2


def test_assign_identity_cannot_mix_system_and_user_assigned(run_cli: RunCli) -> None:
    result = run_cli("cluster", "create", "ident", "-s", "STANDARD_D2_V2", "--max-nodes", "1",
                     "--assign-identity", "[system]", "--assign-identity", "/subscriptions/x/id")
    assert result.exit_code == 2 and "not both" in result.output
