"""Subscription-level views: the VM catalogue, quota limits and quota use per region."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from shared.api.deps import DepsDep
from shared.domain.errors import InvalidField
from shared.domain.quota import QuotaLimits, family_quota_name
from shared.domain.vm_sizes import load_catalogue, normalize_location

Location = Annotated[str | None, Query(max_length=64, description="Azure region, e.g. eastus")]


routes = APIRouter(prefix="/api")


def known_region(location: str) -> str:
    """The short name of a region the catalogue knows; an unknown one is an error, not an empty answer."""
    region = normalize_location(location)
    regions = load_catalogue().regions
    if region not in regions:
        raise InvalidField("location", f"unknown location '{location}'; known locations: {', '.join(regions)}")
    return region


@routes.get("/vm-sizes")
def vm_sizes(location: Location = None) -> list[dict[str, Any]]:
    """The VM sizes offered (in a region), with their quota family and list prices per hour."""
    region = known_region(location) if location else None
    return [{"name": v.name, "family": v.family, "vcpus": v.vcpus, "memory_gb": v.memory_gb, "gpus": v.gpus,
             "gpu_model": v.gpu_model, "price_per_hour_dedicated": v.price_per_hour_dedicated,
             "price_per_hour_low_priority": v.price_per_hour_low_priority, "locations": list(v.locations)}
            for v in load_catalogue().list(region)]


@routes.get("/quotas")
def quotas(deps: DepsDep, location: Location = None) -> dict[str, Any]:
    """vCPU limits of the region: per VM family (dedicated), low priority across families, and the regional total."""
    region = known_region(location or deps.workspace_location)
    return {"location": region, **_limits(deps.quota_limits)}


@routes.get("/usages")
def usages(deps: DepsDep, location: Location = None) -> dict[str, Any]:
    """vCPUs booked in the region, by family and priority, next to their limits. A released node's cores stay
    booked until the timer's next resync of its cluster (within a minute) while every limit they count against is
    at least half free; nearer a limit they go back with the release."""
    region = known_region(location or deps.workspace_location)
    ledger = deps.store.get_quota_ledger(region)
    usage = ledger.usage() if ledger else None
    limits = deps.quota_limits
    families = sorted({v.family for v in load_catalogue().list(region)})
    return {
        "location": region,
        "total_regional_dedicated_vcpus": {"limit": limits.total_regional_dedicated_vcpus,
                                           "current": usage.regional_dedicated(region) if usage else 0},
        "low_priority_vcpus": {"limit": limits.low_priority_vcpus,
                               "current": usage.regional_low_priority(region) if usage else 0},
        "families": [{"family": f, "name": family_quota_name(f), "limit": limits.dedicated_family_limit(f),
                      "current": usage.family_dedicated(region, f) if usage else 0} for f in families],
        "clusters": {key: a.model_dump() for key, a in (ledger.allocations.items() if ledger else ())},
    }


def _limits(limits: QuotaLimits) -> dict[str, Any]:
    families = sorted({v.family for v in load_catalogue().list(None)})
    return {"total_regional_dedicated_vcpus": limits.total_regional_dedicated_vcpus,
            "low_priority_vcpus": limits.low_priority_vcpus,
            "families": {f: limits.dedicated_family_limit(f) for f in families}}
