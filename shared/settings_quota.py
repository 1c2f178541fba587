"""The quota settings (names in ``shared.domain.quota``'s docstring), read from the environment into the domain's
``QuotaLimits`` once, by ``Settings.from_env``: the domain never sees a raw setting."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from shared.domain.quota import (
    DEFAULT_FAMILY_DEDICATED_VCPUS,
    DEFAULT_FAMILY_DEFAULT_DEDICATED_VCPUS,
    DEFAULT_LOW_PRIORITY_VCPUS,
    DEFAULT_TOTAL_REGIONAL_DEDICATED_VCPUS,
    QuotaLimits,
)

SETTING_TOTAL_VCPUS: Final = "COMPUTEPLANE_QUOTA_TOTAL_VCPUS"
SETTING_LOW_PRIORITY_VCPUS: Final = "COMPUTEPLANE_QUOTA_LOWPRIORITY_VCPUS"
SETTING_FAMILY_DEFAULT_VCPUS: Final = "COMPUTEPLANE_QUOTA_FAMILY_DEFAULT_VCPUS"
SETTING_FAMILY_PREFIX: Final = "COMPUTEPLANE_QUOTA_FAMILY__"  # + a family name: one setting per family
QUOTA_SETTING_NAMES: Final = (SETTING_TOTAL_VCPUS, SETTING_LOW_PRIORITY_VCPUS, SETTING_FAMILY_DEFAULT_VCPUS)


class QuotaSettingError(ValueError):
    """A quota setting that is not a whole number >= 0. Names the setting."""


def limits_from_env(env: Mapping[str, str]) -> QuotaLimits:
    """Quota limits from environment-style settings; other names are ignored, absent ones keep the default."""
    families = dict(DEFAULT_FAMILY_DEDICATED_VCPUS)
    for name, value in env.items():
        if name.upper().startswith(SETTING_FAMILY_PREFIX) and len(name) > len(SETTING_FAMILY_PREFIX):
            family = name[len(SETTING_FAMILY_PREFIX):]
            for known in [f for f in families if f.lower() == family.lower()]:
                del families[known]
            families[family] = _whole_number(name, value)
    return QuotaLimits(
        total_regional_dedicated_vcpus=_setting(env, SETTING_TOTAL_VCPUS, DEFAULT_TOTAL_REGIONAL_DEDICATED_VCPUS),
        low_priority_vcpus=_setting(env, SETTING_LOW_PRIORITY_VCPUS, DEFAULT_LOW_PRIORITY_VCPUS),
        family_dedicated_vcpus=families,
        default_family_dedicated_vcpus=_setting(env, SETTING_FAMILY_DEFAULT_VCPUS,
                                                DEFAULT_FAMILY_DEFAULT_DEDICATED_VCPUS),
    )


def _setting(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name)
    return default if value is None else _whole_number(name, value)


def _whole_number(name: str, value: str) -> int:
    text = value.strip()
    if not (text.isascii() and text.isdigit()):
        raise QuotaSettingError(f"{name}: must be a whole number of vCPUs >= 0, got '{value}'")
    return int(text)
