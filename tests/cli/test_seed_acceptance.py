"""The seed's first three code blocks (seed/000_d8b7fc3ebd9df4f9.txt), copied with only their import lines changed
(``azureml`` -> ``computeplane.azureml``) and ``ws`` pointed at a running ``computeplane serve``."""

from __future__ import annotations

import contextlib
import io
from typing import Any

import pytest

from computeplane.azureml import AmlCompute, ComputeTarget, ComputeTargetException, Workspace
from tests.e2e.server import Server

SEED_IMPORTS = """\
from computeplane.azureml.core.compute import ComputeTarget, AmlCompute
from computeplane.azureml.core.compute_target import ComputeTargetException
"""

# Block 1: create the cluster, or use the existing one, and wait for it.
SEED_CREATE_OR_GET = SEED_IMPORTS + """
# Choose a name for your CPU cluster
cpu_cluster_name = "cpucluster"

# Verify that cluster does not exist already
try:
    cpu_cluster = ComputeTarget(workspace=ws, name=cpu_cluster_name)
    print('Found existing cluster, use it.')
except ComputeTargetException:
    # To use a different region for the compute, add a location='<region>' parameter
    compute_config = AmlCompute.provisioning_configuration(vm_size='STANDARD_D2_V2',
                                                           max_nodes=4)
    cpu_cluster = ComputeTarget.create(ws, cpu_cluster_name, compute_config)

cpu_cluster.wait_for_completion(show_output=True)
"""

# Block 2: low-priority VMs.
SEED_LOW_PRIORITY = """
compute_config = AmlCompute.provisioning_configuration(vm_size='STANDARD_D2_V2',
                                                            vm_priority='lowpriority',
                                                            max_nodes=4)
"""

# Block 3: a system-assigned, then (in another workspace) a user-assigned managed identity.
SEED_SYSTEM_ASSIGNED = """
# configure cluster with a system-assigned managed identity
compute_config = AmlCompute.provisioning_configuration(vm_size='STANDARD_D2_V2',
                                                        max_nodes=5,
                                                        identity_type="SystemAssigned",
                                                        )
cpu_cluster_name = "cpu-cluster"
cpu_cluster = ComputeTarget.create(ws, cpu_cluster_name, compute_config)
"""

SEED_USER_ASSIGNED = """
# configure cluster with a user-assigned managed identity
compute_config = AmlCompute.provisioning_configuration(vm_size='STANDARD_D2_V2',
                                                        max_nodes=5,
                                                        identity_type="UserAssigned",
                                                        identity_id=['/subscriptions/<subcription_id>/resourcegroups/<resource_group>/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<user_assigned_identity>'])

cpu_cluster_name = "cpu-cluster"
cpu_cluster = ComputeTarget.create(ws, cpu_cluster_name, compute_config)
"""

# The seed's placeholders, filled in as its reader would (the identity must exist beforehand, the seed says).
USER_ASSIGNED_ID = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/ml-rg/providers/"
                    "Microsoft.ManagedIdentity/userAssignedIdentities/trainer")
PLACEHOLDERS = {"<subcription_id>": "00000000-0000-0000-0000-000000000000", "<resource_group>": "ml-rg",
                "<user_assigned_identity>": "trainer"}


def filled_in(block: str) -> str:
    for placeholder, value in PLACEHOLDERS.items():
        block = block.replace(placeholder, value)
    return block


@pytest.fixture
def ws(shared_server: Server, request: pytest.FixtureRequest) -> Workspace:
    """A workspace of its own on the module's server (as a fresh notebook would have)."""
    return Workspace(endpoint=shared_server.url, name=f"seed-{request.node.name[5:40]}".replace("_", "-"))


def run_block(code: str, namespace: dict[str, Any]) -> str:
    """Run a seed block in ``namespace`` (as a notebook cell); return what it printed."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(SEED_IMPORTS + code, "<seed block>", "exec"), namespace)
    return printed.getvalue()


def test_block_1_creates_cpucluster_waits_for_it_and_finds_it_the_second_time(ws: Workspace) -> None:
    namespace: dict[str, Any] = {"ws": ws}

    first = run_block(SEED_CREATE_OR_GET, namespace)
    assert "Found existing cluster, use it." not in first
    assert 'Provisioning operation finished, operation "Succeeded"' in first
    assert "AmlCompute wait for completion finished" in first
    assert "Minimum number of nodes requested have been provisioned" in first

    cluster = ComputeTarget(workspace=namespace["ws"], name="cpucluster")
    assert isinstance(cluster, AmlCompute) and cluster.provisioning_state == "Succeeded"
    status = cluster.get_status()
    assert status is not None and status.provisioning_state == "Succeeded"
    assert (status.vm_size.upper(), status.vm_priority) == ("STANDARD_D2_V2", "dedicated")
    assert (status.scale_settings.minimum_node_count, status.scale_settings.maximum_node_count) == (0, 4)
    assert status.scale_settings.idle_seconds_before_scaledown == 1800
    assert status.current_node_count == 0 and status.node_state_counts.idle_node_count == 0
    assert status.serialize()["provisioningState"] == "Succeeded"

    second = run_block(SEED_CREATE_OR_GET, namespace)
    assert second.startswith("Found existing cluster, use it.")
    assert "Minimum number of nodes requested have been provisioned" in second


def test_a_missing_cluster_raises_compute_target_exception(ws: Workspace) -> None:
    with pytest.raises(ComputeTargetException, match="not found"):
        ComputeTarget(workspace=ws, name="nothere")


def test_block_2_low_priority_configuration_provisions_low_priority_nodes(ws: Workspace) -> None:
    namespace: dict[str, Any] = {"ws": ws}
    run_block(SEED_LOW_PRIORITY, namespace)
    config = namespace["compute_config"]
    assert (config.vm_priority, config.max_nodes, config.idle_seconds_before_scaledown) == ("lowpriority", 4, 1800)

    cluster = ComputeTarget.create(namespace["ws"], "lowpri", config)
    cluster.wait_for_completion()
    assert isinstance(cluster, AmlCompute) and cluster.vm_priority == "lowpriority"
    assert cluster.provisioning_state == "Succeeded"


def test_block_3_system_assigned_identity(ws: Workspace) -> None:
    namespace: dict[str, Any] = {"ws": ws}
    run_block(SEED_SYSTEM_ASSIGNED, namespace)
    cluster = namespace["cpu_cluster"]
    cluster.wait_for_completion()
    assert cluster.provisioning_state == "Succeeded"
    assert cluster.identity_type == "SystemAssigned" and not cluster.identity_id


def test_block_3_user_assigned_identity_with_its_placeholders_filled_in(ws: Workspace) -> None:
    namespace: dict[str, Any] = {"ws": ws}
    with pytest.raises(ComputeTargetException, match="identity_id"):  # as copied: '<...>' is not a resource id
        run_block(SEED_USER_ASSIGNED, namespace)

    run_block(filled_in(SEED_USER_ASSIGNED), namespace)
    cluster = namespace["cpu_cluster"]
    cluster.wait_for_completion()
    assert cluster.provisioning_state == "Succeeded"
    assert cluster.identity_type == "UserAssigned"
    assert [i.lower() for i in cluster.identity_id] == [USER_ASSIGNED_ID.lower()]  # ARM ids ignore case


# The seed's next block: add a managed identity to the existing cluster ``cpu_cluster``.
SEED_ADD_SYSTEM_ASSIGNED = """
# add a system-assigned managed identity
cpu_cluster.add_identity(identity_type="SystemAssigned")
"""


def test_add_identity_to_an_existing_cluster_and_remove_it(ws: Workspace) -> None:
    namespace: dict[str, Any] = {"ws": ws}
    run_block(SEED_CREATE_OR_GET, namespace)
    run_block(SEED_ADD_SYSTEM_ASSIGNED, namespace)
    cluster = namespace["cpu_cluster"]
    assert cluster.identity_type == "SystemAssigned"
    cluster.remove_identity()
    assert cluster.identity_type is None
    with pytest.raises(ComputeTargetException, match="no identity assigned"):
        cluster.remove_identity()


def test_provisioning_configuration_is_checked_as_v1_checks_it() -> None:
    with pytest.raises(ComputeTargetException, match="max nodes count is mandatory"):
        AmlCompute.provisioning_configuration(vm_size="STANDARD_D2_V2")
    with pytest.raises(ComputeTargetException, match="not all virtual net information"):
        AmlCompute.provisioning_configuration(vm_size="STANDARD_D2_V2", max_nodes=1, vnet_name="v")
    with pytest.raises(ComputeTargetException, match="identity_id"):
        AmlCompute.provisioning_configuration(vm_size="STANDARD_D2_V2", max_nodes=1, identity_type="UserAssigned")
    request = AmlCompute.provisioning_configuration(vm_size="STANDARD_D2_V2", max_nodes=2,
                                                    idle_seconds_before_scaledown=None).create_request()
    assert request["idle_seconds_before_scaledown"] == 1800
    assert "remote_login_port_public_access" not in request and "enable_node_public_ip" not in request
