"""Managed identities of a cluster: ARM ids, derived ids, the default identity, and which one a request means."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain.errors import InvalidField
from shared.domain.identity import (
    ClusterIdentity,
    ManagedIdentity,
    ManagedIdentityNotFound,
    NoManagedIdentityAssigned,
    ObjectIdGivenAsClientId,
    new_system_assigned,
    select_identity,
    user_assigned_from_arm_id,
)

SUBSCRIPTION = "11111111-2222-3333-4444-555555555555"


def arm_id(name: str, resource_group: str = "rg-ml") -> str:
    return (f"/subscriptions/{SUBSCRIPTION}/resourcegroups/{resource_group}"
            f"/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}")


def counting_uuids() -> Iterator[uuid.UUID]:
    return (uuid.UUID(int=n) for n in range(1, 1000))


READER, WRITER = user_assigned_from_arm_id(arm_id("reader")), user_assigned_from_arm_id(arm_id("writer"))
SYSTEM = new_system_assigned("ws", "cpu-cluster", counting_uuids().__next__)


def test_a_user_assigned_identity_has_the_same_ids_on_every_cluster_and_in_any_casing() -> None:
    again = user_assigned_from_arm_id(arm_id("reader").upper().replace(SUBSCRIPTION.upper(), SUBSCRIPTION))
    assert (again.client_id, again.principal_id) == (READER.client_id, READER.principal_id)
    assert READER.client_id != READER.principal_id
    assert READER.client_id != WRITER.client_id


def test_a_user_assigned_arm_id_is_stored_with_azures_keyword_casing() -> None:
    assert READER.resource_id == (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-ml"
                                  "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/reader")
    assert READER.name == "reader"
    assert READER.kind == "UserAssigned"


@pytest.mark.parametrize("bad", [
    "reader",
    f"/subscriptions/{SUBSCRIPTION}/resourcegroups/rg/providers/Microsoft.Storage/storageAccounts/reader",
    f"/subscriptions/{SUBSCRIPTION}/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/",
    "/subscriptions/not-a-guid/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/reader",
    f"/subscriptions/{SUBSCRIPTION}/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/a",
    f"/subscriptions/{SUBSCRIPTION}/resourcegroups/rg./providers/Microsoft.ManagedIdentity/userAssignedIdentities/ab1",
])
def test_a_malformed_user_assigned_arm_id_is_refused_naming_the_field(bad: str) -> None:
    with pytest.raises(InvalidField) as raised:
        user_assigned_from_arm_id(bad)
    assert raised.value.field == "identity_id"


@given(st.from_regex(r"[A-Za-z0-9][-A-Za-z0-9_]{2,40}", fullmatch=True))
def test_derived_ids_are_deterministic_guids(name: str) -> None:
    first, second = user_assigned_from_arm_id(arm_id(name)), user_assigned_from_arm_id(arm_id(name))
    assert first == second
    assert uuid.UUID(first.client_id).version == 5


def test_a_system_assigned_identity_is_new_each_time_and_names_its_compute() -> None:
    uuids = counting_uuids().__next__
    first, second = new_system_assigned("ws", "cpu-cluster", uuids), new_system_assigned("ws", "cpu-cluster", uuids)
    assert first.client_id != second.client_id
    assert first.kind == "SystemAssigned"
    assert first.resource_id is not None and first.resource_id.endswith("/workspaces/ws/computes/cpu-cluster")
    assert first.description == "the system-assigned identity of compute 'cpu-cluster'"


def test_ids_must_be_guids_and_are_kept_lower_case() -> None:
    upper = str(uuid.uuid4()).upper()
    identity = ManagedIdentity(kind="SystemAssigned", client_id=upper, principal_id=str(uuid.uuid4()))
    assert identity.client_id == upper.lower()
    with pytest.raises(InvalidField):
        ManagedIdentity(kind="SystemAssigned", client_id="my-app", principal_id=str(uuid.uuid4()))


def test_a_user_assigned_identity_needs_its_arm_id() -> None:
    with pytest.raises(InvalidField):
        ManagedIdentity(kind="UserAssigned", client_id=str(uuid.uuid4()), principal_id=str(uuid.uuid4()))


def test_the_default_is_the_system_assigned_identity_or_the_first_user_assigned_one() -> None:
    assert ClusterIdentity(type="SystemAssigned", identities=(SYSTEM,)).default == SYSTEM
    assert ClusterIdentity(type="UserAssigned", identities=(WRITER, READER)).default == WRITER
    assert ClusterIdentity().default is None


@pytest.mark.parametrize(("kind", "identities"), [
    ("UserAssigned", (SYSTEM, READER)),
    ("SystemAssigned", (READER,)),
    (None, (READER,)),
    ("UserAssigned", ()),
    ("UserAssigned", (READER, READER)),
])
def test_a_cluster_never_mixes_identity_kinds_or_repeats_one(kind: str | None,
                                                             identities: tuple[ManagedIdentity, ...]) -> None:
    with pytest.raises(InvalidField):
        ClusterIdentity.model_validate({"type": kind, "identities": identities})


def test_no_selector_selects_the_default_identity() -> None:
    assert select_identity([READER, WRITER]) == READER


def test_an_identity_is_selected_by_client_id_object_id_or_resource_id() -> None:
    assert select_identity([READER, WRITER], client_id=WRITER.client_id.upper()) == WRITER
    assert select_identity([READER, WRITER], principal_id=WRITER.principal_id) == WRITER
    assert WRITER.resource_id is not None
    assert select_identity([READER, WRITER], resource_id=WRITER.resource_id.lower()) == WRITER


def test_an_identity_not_granted_is_not_found() -> None:
    with pytest.raises(ManagedIdentityNotFound, match="No User Assigned or Delegated Managed Identity found"):
        select_identity([READER], client_id=WRITER.client_id)
    with pytest.raises(ManagedIdentityNotFound):
        select_identity([READER], principal_id=WRITER.principal_id)


def test_an_object_id_given_as_client_id_names_the_identity_and_its_client_id() -> None:
    with pytest.raises(ObjectIdGivenAsClientId) as raised:
        select_identity([READER, WRITER], client_id=WRITER.principal_id)
    assert "A client id was expected" in raised.value.message
    assert "the user-assigned identity 'writer'" in raised.value.message
    assert WRITER.client_id in raised.value.message


def test_a_compute_without_identity_says_so_whatever_is_asked() -> None:
    with pytest.raises(NoManagedIdentityAssigned, match="no managed identity assigned"):
        select_identity([])
    with pytest.raises(NoManagedIdentityAssigned):
        select_identity([], client_id=READER.client_id)


def test_only_one_selector_may_be_given() -> None:
    with pytest.raises(InvalidField):
        select_identity([READER], client_id=READER.client_id, principal_id=READER.principal_id)
