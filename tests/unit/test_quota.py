from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain.quota import (
    DEFAULT_FAMILY_DEDICATED_VCPUS,
    QuotaLimits,
    QuotaUsage,
    can_ever_fit,
    family_quota_name,
    free_nodes,
    scale_up_allowed,
)
from shared.domain.quota_ledger import QuotaLedger
from shared.domain.vm_sizes import DEDICATED, LOW_PRIORITY, VmSize, load_catalogue
from shared.settings_quota import QuotaSettingError, limits_from_env

CATALOGUE = load_catalogue()
D2_V2 = CATALOGUE.get("Standard_D2_v2")  # 2 vCPUs, standardDv2Family
NC6S_V3 = CATALOGUE.get("Standard_NC6s_v3")  # 6 vCPUs, standardNCSv3Family
NC12S_V3 = CATALOGUE.get("Standard_NC12s_v3")  # 12 vCPUs
T4 = CATALOGUE.get("Standard_NC4as_T4_v3")  # 4 vCPUs


def test_defaults_mirror_a_new_pay_as_you_go_subscription() -> None:
    limits = QuotaLimits()
    assert limits.total_regional_dedicated_vcpus == 350
    assert limits.low_priority_vcpus == 100
    assert limits.dedicated_family_limit("standardDv2Family") == 350
    assert limits.dedicated_family_limit("standardNCSv3Family") == 12
    assert limits.dedicated_family_limit("STANDARDNCASV3_T4FAMILY") == 16
    assert limits.dedicated_family_limit("standardNDASv4_A100Family") == 0


def test_every_gpu_family_of_the_catalogue_has_an_explicit_scarce_default() -> None:
    gpu_families = {s.family for s in CATALOGUE.list() if s.has_gpus}
    assert gpu_families <= set(DEFAULT_FAMILY_DEDICATED_VCPUS)
    assert all(DEFAULT_FAMILY_DEDICATED_VCPUS[f] <= 16 for f in gpu_families)


def test_family_quota_name_is_azures_display_name() -> None:
    assert family_quota_name("standardNCSv3Family") == "Standard NCSv3 Family vCPUs"
    assert family_quota_name("standardNCASv3_T4Family") == "Standard NCASv3_T4 Family vCPUs"


def test_free_nodes_is_bound_by_the_family_quota() -> None:
    usage = QuotaUsage.of({("eastus", "standardNCSv3Family", DEDICATED): 6})
    assert free_nodes(QuotaLimits(), usage, NC6S_V3, DEDICATED, "eastus") == 1
    assert free_nodes(QuotaLimits(), usage, NC12S_V3, DEDICATED, "eastus") == 0
    assert free_nodes(QuotaLimits(), usage, NC6S_V3, DEDICATED, "westeurope") == 2  # each region on its own


def test_free_nodes_is_bound_by_the_total_regional_quota_across_families() -> None:
    usage = QuotaUsage.of({("eastus", "standardDSv3Family", DEDICATED): 340,
                           ("eastus", "standardDv2Family", LOW_PRIORITY): 90})
    assert free_nodes(QuotaLimits(), usage, D2_V2, DEDICATED, "eastus") == 5  # (350 - 340) // 2
    assert free_nodes(QuotaLimits(), usage, D2_V2, LOW_PRIORITY, "East US") == 5  # (100 - 90) // 2


def test_low_priority_uses_one_regional_pool_whatever_the_family_quota() -> None:
    usage = QuotaUsage.of({("eastus", "standardDv2Family", LOW_PRIORITY): 40})
    assert free_nodes(QuotaLimits(), usage, NC12S_V3, LOW_PRIORITY, "eastus") == 5  # 60 // 12, family quota 12


def test_scale_up_grants_what_fits_and_reports_azures_error_for_the_rest() -> None:
    limits = QuotaLimits(family_dedicated_vcpus={"standardNCSv3Family": 0})
    granted, error = scale_up_allowed(limits, QuotaUsage(), NC12S_V3, DEDICATED, "eastus", 1)
    assert granted == 0
    assert error == ("Operation results in exceeding quota limits of Standard NCSv3 Family vCPUs. Maximum allowed: 0, "
                     "Current in use: 0, Additional requested: 12. Location: eastus. "
                     "Please request a quota increase or use fewer nodes.")


def test_scale_up_partial_grant_names_the_total_regional_quota_when_it_binds() -> None:
    usage = QuotaUsage.of({("eastus", "standardDSv3Family", DEDICATED): 346})
    granted, error = scale_up_allowed(QuotaLimits(), usage, D2_V2, DEDICATED, "eastus", 3)
    assert granted == 2
    assert error is not None
    assert "Total Regional vCPUs. Maximum allowed: 350, Current in use: 346, Additional requested: 6" in error


def test_scale_up_low_priority_error_names_the_low_priority_pool() -> None:
    granted, error = scale_up_allowed(QuotaLimits(low_priority_vcpus=8), QuotaUsage(), T4, LOW_PRIORITY, "eastus", 3)
    assert granted == 2
    assert error is not None and "Total Regional Low-priority vCPUs. Maximum allowed: 8" in error


def test_scale_up_within_quota_has_no_error() -> None:
    assert scale_up_allowed(QuotaLimits(), QuotaUsage(), D2_V2, DEDICATED, "eastus", 4) == (4, None)
    assert scale_up_allowed(QuotaLimits(), QuotaUsage(), D2_V2, DEDICATED, "eastus", 0) == (0, None)


def test_usage_above_a_lowered_limit_grants_nothing() -> None:
    usage = QuotaUsage.of({("eastus", "standardDv2Family", DEDICATED): 100})
    limits = QuotaLimits(family_dedicated_vcpus={"standardDv2Family": 50})
    assert free_nodes(limits, usage, D2_V2, DEDICATED, "eastus") == 0
    assert scale_up_allowed(limits, usage, D2_V2, DEDICATED, "eastus", 1)[0] == 0


def test_can_ever_fit_rejects_a_job_above_the_family_or_regional_or_low_priority_limit() -> None:
    limits = QuotaLimits()
    assert can_ever_fit(limits, NC6S_V3, DEDICATED, "eastus", 2) is None
    family = can_ever_fit(limits, NC6S_V3, DEDICATED, "eastus", 3)
    assert family is not None and "Standard NCSv3 Family vCPUs" in family and "18 vCPUs" in family
    regional = can_ever_fit(QuotaLimits(total_regional_dedicated_vcpus=10), D2_V2, DEDICATED, "eastus", 6)
    assert regional is not None and "Total Regional vCPUs" in regional and "Maximum allowed: 10" in regional
    low = can_ever_fit(limits, D2_V2, LOW_PRIORITY, "eastus", 51)
    assert low is not None and "Low-priority" in low


def test_unknown_priority_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown VM priority"):
        free_nodes(QuotaLimits(), QuotaUsage(), D2_V2, "spot", "eastus")


def test_limits_from_env_reads_the_documented_names() -> None:
    limits = limits_from_env({
        "COMPUTEPLANE_QUOTA_TOTAL_VCPUS": "500",
        "COMPUTEPLANE_QUOTA_LOWPRIORITY_VCPUS": " 200 ",
        "COMPUTEPLANE_QUOTA_FAMILY_DEFAULT_VCPUS": "64",
        "COMPUTEPLANE_QUOTA_FAMILY__standardNCSv3Family": "24",
        "COMPUTEPLANE_QUOTA_FAMILY__STANDARDNDSV2FAMILY": "40",
        "PATH": "/usr/bin",
    })
    assert limits.total_regional_dedicated_vcpus == 500
    assert limits.low_priority_vcpus == 200
    assert limits.default_family_dedicated_vcpus == 64
    assert limits.dedicated_family_limit("standardNCSv3Family") == 24
    assert limits.dedicated_family_limit("standardNDSv2Family") == 40
    assert limits.dedicated_family_limit("standardNCASv3_T4Family") == 16  # defaults kept
    assert limits_from_env({}) == QuotaLimits()


@pytest.mark.parametrize("value", ["-1", "ten", "1.5", "", "²"])
def test_limits_from_env_refuses_what_is_not_a_whole_number(value: str) -> None:
    with pytest.raises(QuotaSettingError, match="COMPUTEPLANE_QUOTA_TOTAL_VCPUS"):
        limits_from_env({"COMPUTEPLANE_QUOTA_TOTAL_VCPUS": value})


REGIONS = ["eastus", "westeurope"]
vm_sizes = st.sampled_from(CATALOGUE.list())
priorities = st.sampled_from([DEDICATED, LOW_PRIORITY])
families = sorted(CATALOGUE.families())
quota_limits = st.builds(
    QuotaLimits,
    total_regional_dedicated_vcpus=st.integers(0, 600),
    low_priority_vcpus=st.integers(0, 300),
    family_dedicated_vcpus=st.dictionaries(st.sampled_from(families), st.integers(0, 400), max_size=6),
    default_family_dedicated_vcpus=st.integers(0, 400),
)
quota_usage = st.dictionaries(
    st.tuples(st.sampled_from(REGIONS), st.sampled_from(families), priorities), st.integers(0, 500), max_size=8,
).map(QuotaUsage.of)


def _within_limits(limits: QuotaLimits, usage: QuotaUsage, size: VmSize, priority: str, region: str) -> bool:
    if priority == LOW_PRIORITY:
        return usage.regional_low_priority(region) <= limits.low_priority_vcpus
    return (usage.family_dedicated(region, size.family) <= limits.dedicated_family_limit(size.family)
            and usage.regional_dedicated(region) <= limits.total_regional_dedicated_vcpus)


@settings(max_examples=300, deadline=None)
@given(limits=quota_limits, usage=quota_usage, size=vm_sizes, priority=priorities, region=st.sampled_from(REGIONS),
       requested=st.integers(0, 200))
def test_granted_nodes_never_make_usage_exceed_any_limit(limits: QuotaLimits, usage: QuotaUsage, size: VmSize,
                                                         priority: str, region: str, requested: int) -> None:
    granted, error = scale_up_allowed(limits, usage, size, priority, region, requested)
    assert 0 <= granted <= requested
    assert (error is None) == (granted == requested)
    if granted:
        after = usage.with_added(region, size.family, priority, granted * size.vcpus)
        assert _within_limits(limits, after, size, priority, region)
    if granted < requested and _within_limits(limits, usage, size, priority, region):
        one_more = usage.with_added(region, size.family, priority, (granted + 1) * size.vcpus)
        assert not _within_limits(limits, one_more, size, priority, region)  # the grant is as large as fits
    if requested and can_ever_fit(limits, size, priority, region, requested) is not None:
        assert granted < requested


def test_a_ledger_working_copy_takes_a_booking_and_the_ledger_read_stays_as_it_was() -> None:
    size = CATALOGUE.get("Standard_D2s_v3", "eastus")
    read = QuotaLedger(region="eastus", etag="3")
    read.set_held("ws/a", size, DEDICATED, 4, "b1")
    copy = read.working_copy()
    copy.set_held("ws/a", size, DEDICATED, 2, "b1")
    copy.set_held("ws/b", size, DEDICATED, 8, "b2")
    assert (read.held_by("ws/a"), read.held_by("ws/b")) == (4, 0)
    assert (copy.held_by("ws/a"), copy.held_by("ws/b"), copy.etag) == (2, 8, "3")
