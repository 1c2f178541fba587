from __future__ import annotations

import json
from importlib import resources

import pytest

from shared.domain.errors import InvalidField
from shared.domain.vm_sizes import (
    DEDICATED,
    LOW_PRIORITY,
    VmCatalogue,
    VmSize,
    load_catalogue,
    parse_catalogue,
)

CATALOGUE = load_catalogue()
REGIONS = {"eastus", "eastus2", "westus2", "westeurope", "northeurope", "southcentralus", "uksouth", "japaneast"}


def test_catalogue_ships_at_least_30_sizes_of_cpu_and_gpu_families() -> None:
    sizes = CATALOGUE.list()
    assert len(sizes) >= 30
    assert sum(s.has_gpus for s in sizes) >= 10
    assert {"standardDv2Family", "standardNCSv3Family", "standardNCASv3_T4Family"} <= CATALOGUE.families()


def test_catalogue_document_says_where_its_figures_come_from() -> None:
    text = (resources.files("shared.domain") / "data" / "vm_sizes.json").read_text(encoding="utf-8")
    document = json.loads(text)
    assert "eastus" in document["source"] and "Low priority" in document["source"]


@pytest.mark.parametrize("size", CATALOGUE.list(), ids=lambda s: s.name)
def test_every_size_is_consistent(size: VmSize) -> None:
    assert size.name.startswith("Standard_")
    assert size.family.startswith("standard") and size.family.endswith("Family")
    assert size.vcpus > 0 and size.memory_gb > 0 and size.gpus >= 0
    assert (size.gpu_model is None) == (size.gpus == 0)
    assert 0 < size.price_per_hour_low_priority < size.price_per_hour_dedicated
    assert size.price_per_hour_low_priority == pytest.approx(0.2 * size.price_per_hour_dedicated, abs=1e-4)
    assert size.price_per_hour(DEDICATED) == size.price_per_hour_dedicated
    assert size.price_per_hour(LOW_PRIORITY) == size.price_per_hour_low_priority
    assert "eastus" in size.locations  # priced in the reference region
    assert set(size.locations) <= REGIONS


def test_sizes_of_one_family_agree_on_gpus_and_a_bigger_size_costs_more() -> None:
    for family in CATALOGUE.families():
        members = [s for s in CATALOGUE.list() if s.family == family]
        assert len({s.has_gpus for s in members}) == 1, family
        assert len({s.gpu_model for s in members}) == 1, family
        for small in members:
            for big in members:
                if small != big and small.vcpus <= big.vcpus and small.memory_gb <= big.memory_gb:
                    assert small.price_per_hour_dedicated < big.price_per_hour_dedicated, (small.name, big.name)


def test_gpu_sizes_are_offered_in_a_subset_of_regions() -> None:
    assert all(set(s.locations) == REGIONS for s in CATALOGUE.list() if not s.has_gpus)
    assert any(set(s.locations) < REGIONS for s in CATALOGUE.list() if s.has_gpus)


@pytest.mark.parametrize("name", ["Standard_D2_v2", "STANDARD_D2_V2", "standard_d2_v2", "sTaNdArD_d2_V2"])
def test_lookup_ignores_case_and_returns_azure_casing(name: str) -> None:
    size = CATALOGUE.get(name, "eastus")
    assert size.name == "Standard_D2_v2"
    assert (size.vcpus, size.family) == (2, "standardDv2Family")


def test_location_compares_without_case_or_spaces() -> None:
    assert CATALOGUE.get("Standard_NC6s_v3", "West Europe").name == "Standard_NC6s_v3"
    assert CATALOGUE.get("Standard_NC6s_v3", None).name == "Standard_NC6s_v3"


def test_unknown_size_names_vm_size_and_suggests_close_names() -> None:
    with pytest.raises(InvalidField) as raised:
        CATALOGUE.get("Standard_NC6s_v4", "eastus")
    assert raised.value.field == "vm_size"
    assert "unknown VM size 'Standard_NC6s_v4'" in raised.value.rule
    assert "Standard_NC6s_v3" in raised.value.rule


def test_size_not_offered_in_location_names_vm_size_and_where_it_is_offered() -> None:
    with pytest.raises(InvalidField) as raised:
        CATALOGUE.get("standard_nd40rs_v2", "japaneast")
    assert raised.value.field == "vm_size"
    assert "'Standard_ND40rs_v2' is not offered in location 'japaneast'" in raised.value.rule
    assert "offered in: eastus, westus2, westeurope" in raised.value.rule


def test_unknown_location_names_location() -> None:
    with pytest.raises(InvalidField) as raised:
        CATALOGUE.get("Standard_D2_v2", "atlantis")
    assert raised.value.field == "location"


def test_list_by_location_keeps_only_sizes_offered_there() -> None:
    in_japan = CATALOGUE.list("japaneast")
    assert in_japan and all(s.offered_in("japaneast") for s in in_japan)
    assert "Standard_ND40rs_v2" not in {s.name for s in in_japan}
    assert len(in_japan) < len(CATALOGUE.list())


def test_load_catalogue_is_cached() -> None:
    assert load_catalogue() is load_catalogue()


def test_catalogue_refuses_a_size_listed_twice() -> None:
    raw = {"name": "Standard_X1", "family": "standardXFamily", "vcpus": 1, "memory_gb": 1, "gpus": 0,
           "gpu_model": None, "price_per_hour_dedicated": 0.1, "price_per_hour_low_priority": 0.02,
           "locations": ["eastus"]}
    with pytest.raises(ValueError, match="listed twice"):
        parse_catalogue({"regions": ["eastus"], "sizes": [raw, {**raw, "name": "STANDARD_X1"}]})
    assert len(VmCatalogue([], ["eastus"])) == 0
