"""The Azure ML quota model, as pure functions of limits, usage and a request.

Azure ML counts vCPUs (cores) per subscription and region:

- dedicated nodes count against the quota of their VM family (``standardNCSv3Family``, ...) AND against the
  total regional dedicated quota ("Total Regional vCPUs"); both must hold;
- low-priority nodes of every family share one regional pool ("Total Regional Low-priority vCPUs").

``QuotaLimits`` holds the limits that apply in each region (every region is counted on its own, as a
subscription's default quota is); ``QuotaUsage`` holds the vCPUs in use per (region, family, priority).

Defaults (``QuotaLimits()``) follow a new pay-as-you-go subscription, rounded: 350 total regional dedicated vCPUs,
350 for a CPU family not listed, 100 low-priority vCPUs, and scarce GPU quota. Azure gives a new subscription 0 vCPUs
for most GPU families; ComputePlane keeps 0 for the large and legacy GPU families (A100, ND, NV, K80 NC) but grants
16 vCPUs of T4 (``standardNCASv3_T4Family``: up to 4 x Standard_NC4as_T4_v3) and 12 vCPUs of V100
(``standardNCSv3Family``: 2 x Standard_NC6s_v3) so that small GPU examples run locally. See
``DEFAULT_FAMILY_DEDICATED_VCPUS``.

Settings (read into ``Settings.quota_limits`` by ``shared.settings_quota.limits_from_env``; absent names keep the
default, each value a whole number >= 0):

=============================================  ============================================================
``COMPUTEPLANE_QUOTA_TOTAL_VCPUS``              total regional dedicated vCPUs (default 350)
``COMPUTEPLANE_QUOTA_LOWPRIORITY_VCPUS``        regional low-priority vCPUs, all families (default 100)
``COMPUTEPLANE_QUOTA_FAMILY_DEFAULT_VCPUS``     dedicated vCPUs of a family not listed (default 350)
``COMPUTEPLANE_QUOTA_FAMILY__<family>``         dedicated vCPUs of one family, e.g.
                                                ``COMPUTEPLANE_QUOTA_FAMILY__standardNCSv3Family=24``
=============================================  ============================================================

Family names compare without case, so upper-cased environment names work too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Final

from shared.domain.vm_sizes import DEDICATED, LOW_PRIORITY, VmSize, normalize_location

DEFAULT_TOTAL_REGIONAL_DEDICATED_VCPUS: Final = 350
DEFAULT_LOW_PRIORITY_VCPUS: Final = 100
DEFAULT_FAMILY_DEFAULT_DEDICATED_VCPUS: Final = 350
DEFAULT_FAMILY_DEDICATED_VCPUS: Final[Mapping[str, int]] = {
    "standardNCASv3_T4Family": 16,
    "standardNCSv3Family": 12,
    "standardNCFamily": 0,
    "standardNCADSA100v4Family": 0,
    "standardNDSv2Family": 0,
    "standardNDASv4_A100Family": 0,
    "standardNVFamily": 0,
    "standardNVSv3Family": 0,
    "standardNVADSA10v5Family": 0,
}

TOTAL_REGIONAL_QUOTA_NAME: Final = "Total Regional vCPUs"
LOW_PRIORITY_QUOTA_NAME: Final = "Total Regional Low-priority vCPUs"


def family_quota_name(family: str) -> str:
    """Azure's display name of a family quota: ``standardNCSv3Family`` -> ``Standard NCSv3 Family vCPUs``."""
    core = family
    if core.lower().startswith("standard"):
        core = core[len("standard"):]
    if core.lower().endswith("family"):
        core = core[: -len("family")]
    return f"Standard {core} Family vCPUs"


@dataclass(frozen=True)
class QuotaLimits:
    """vCPU limits that apply in each region (each region counted on its own)."""

    total_regional_dedicated_vcpus: int = DEFAULT_TOTAL_REGIONAL_DEDICATED_VCPUS
    low_priority_vcpus: int = DEFAULT_LOW_PRIORITY_VCPUS
    family_dedicated_vcpus: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_FAMILY_DEDICATED_VCPUS))
    default_family_dedicated_vcpus: int = DEFAULT_FAMILY_DEFAULT_DEDICATED_VCPUS

    def dedicated_family_limit(self, family: str) -> int:
        wanted = family.lower()
        for name, limit in self.family_dedicated_vcpus.items():
            if name.lower() == wanted:
                return limit
        return self.default_family_dedicated_vcpus


UsageKey = tuple[str, str, str]  # (region, family, priority), normalized: region and family lower case


def _canonical_priority(priority: str) -> str:
    canonical = priority.lower()
    if canonical not in (DEDICATED, LOW_PRIORITY):
        raise ValueError(f"unknown VM priority '{priority}'; expected '{DEDICATED}' or '{LOW_PRIORITY}'")
    return canonical


def _usage_key(location: str, family: str, priority: str) -> UsageKey:
    return normalize_location(location), family.lower(), _canonical_priority(priority)


@dataclass(frozen=True)
class QuotaUsage:
    """vCPUs in use per (region, family, priority). Immutable: ``with_added`` returns a new usage."""

    vcpus_in_use: Mapping[UsageKey, int] = field(default_factory=dict)

    @classmethod
    def of(cls, entries: Mapping[tuple[str, str, str], int]) -> QuotaUsage:
        """Usage from ``{(location, family, priority): vcpus}`` in any case; entries for the same key add up."""
        usage = cls()
        for (location, family, priority), vcpus in entries.items():
            usage = usage.with_added(location, family, priority, vcpus)
        return usage

    def with_added(self, location: str, family: str, priority: str, vcpus: int) -> QuotaUsage:
        key = _usage_key(location, family, priority)
        updated = dict(self.vcpus_in_use)
        updated[key] = updated.get(key, 0) + vcpus
        return replace(self, vcpus_in_use=updated)

    def family_dedicated(self, location: str, family: str) -> int:
        return self.vcpus_in_use.get(_usage_key(location, family, DEDICATED), 0)

    def regional_dedicated(self, location: str) -> int:
        return self._regional(location, lambda priority: priority == DEDICATED)

    def regional_low_priority(self, location: str) -> int:
        return self._regional(location, lambda priority: priority == LOW_PRIORITY)

    def _regional(self, location: str, counts: Callable[[str], bool]) -> int:
        region = normalize_location(location)
        return sum(v for (r, _, p), v in self.vcpus_in_use.items() if r == region and counts(p))


@dataclass(frozen=True)
class _Headroom:
    """The limit that binds a request: its display name, the limit and the vCPUs in use."""

    quota_name: str
    limit: int
    in_use: int

    @property
    def free_vcpus(self) -> int:
        return max(self.limit - self.in_use, 0)


def _headrooms(limits: QuotaLimits, usage: QuotaUsage, vm_size: VmSize, priority: str,
               location: str) -> list[_Headroom]:
    """Every limit a node of ``vm_size`` and ``priority`` counts against."""
    if _canonical_priority(priority) == LOW_PRIORITY:
        return [_Headroom(LOW_PRIORITY_QUOTA_NAME, limits.low_priority_vcpus, usage.regional_low_priority(location))]
    return [_Headroom(family_quota_name(vm_size.family), limits.dedicated_family_limit(vm_size.family),
                      usage.family_dedicated(location, vm_size.family)),
            _Headroom(TOTAL_REGIONAL_QUOTA_NAME, limits.total_regional_dedicated_vcpus,
                      usage.regional_dedicated(location))]


def _binding_headroom(limits: QuotaLimits, usage: QuotaUsage, vm_size: VmSize, priority: str,
                      location: str) -> _Headroom:
    return min(_headrooms(limits, usage, vm_size, priority, location), key=lambda h: h.free_vcpus)


def half_free(limits: QuotaLimits, usage: QuotaUsage, vm_size: VmSize, priority: str, location: str) -> bool:
    """At least half of every limit a node of ``vm_size`` counts against is free in ``usage``: cores given back
    there can wait for the timer (``shared.handlers.quota``), since nobody is near a limit."""
    return all(h.free_vcpus * 2 >= h.limit for h in _headrooms(limits, usage, vm_size, priority, location))


def free_nodes(limits: QuotaLimits, usage: QuotaUsage, vm_size: VmSize, priority: str, location: str) -> int:
    """How many more nodes of ``vm_size`` fit the quota in ``location`` right now."""
    return _binding_headroom(limits, usage, vm_size, priority, location).free_vcpus // vm_size.vcpus


def quota_exceeded_message(quota_name: str, limit: int, in_use: int, requested_vcpus: int, location: str) -> str:
    """Azure ML's wording when an operation would exceed a quota."""
    return (f"Operation results in exceeding quota limits of {quota_name}. Maximum allowed: {limit}, "
            f"Current in use: {in_use}, Additional requested: {requested_vcpus}. Location: {location}. "
            f"Please request a quota increase or use fewer nodes.")


def scale_up_allowed(limits: QuotaLimits, usage: QuotaUsage, vm_size: VmSize, priority: str, location: str,
                     requested_nodes: int) -> tuple[int, str | None]:
    """Nodes granted out of ``requested_nodes``, and Azure's quota error when not all of them fit.

    The error names the binding quota (family, total regional or low-priority), its limit, the vCPUs in use and
    the vCPUs the whole request asked for.
    """
    if requested_nodes <= 0:
        return 0, None
    headroom = _binding_headroom(limits, usage, vm_size, priority, location)
    granted = min(requested_nodes, headroom.free_vcpus // vm_size.vcpus)
    if granted == requested_nodes:
        return granted, None
    message = quota_exceeded_message(headroom.quota_name, headroom.limit, headroom.in_use,
                                     requested_nodes * vm_size.vcpus, normalize_location(location))
    return granted, message


def can_ever_fit(limits: QuotaLimits, vm_size: VmSize, priority: str, location: str, node_count: int) -> str | None:
    """Why a job of ``node_count`` nodes can never run under these limits, even on an idle subscription; None if it
    can. For rejecting at submit with ``QuotaExceeded`` (code ``JobNodeCountExceedsCoreQuota``)."""
    needed = node_count * vm_size.vcpus
    priority = _canonical_priority(priority)
    if priority == LOW_PRIORITY:
        candidates = [(LOW_PRIORITY_QUOTA_NAME, limits.low_priority_vcpus)]
    else:
        candidates = [(family_quota_name(vm_size.family), limits.dedicated_family_limit(vm_size.family)),
                      (TOTAL_REGIONAL_QUOTA_NAME, limits.total_regional_dedicated_vcpus)]
    for quota_name, limit in candidates:
        if needed > limit:
            return (f"The job needs {node_count} node(s) of {vm_size.name} ({vm_size.vcpus} vCPUs each, {needed} "
                    f"vCPUs in all), above the {priority} quota of {quota_name} in {normalize_location(location)}: "
                    f"Maximum allowed: {limit}. It can never run; request a quota increase or use fewer nodes.")
    return None
