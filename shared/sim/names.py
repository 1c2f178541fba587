"""The names a user picks a policy and a trace format by (light: the CLI imports this at start-up)."""

from __future__ import annotations

from enum import StrEnum


class PolicyName(StrEnum):
    COMPUTEPLANE = "computeplane"
    AMLCOMPUTE_V1 = "amlcompute-v1"
    AMLCOMPUTE_V2 = "amlcompute-v2"
    SKYPILOT = "skypilot"
    CLUSTER_AUTOSCALER = "cluster-autoscaler"
    BATCH_15_MIN = "batch-15m"
    BATCH_5_MIN = "batch-5m"
    ADAPTIVE = "adaptive"


class WorkloadFormat(StrEnum):
    PHILLY = "philly"
    OPENB = "openb"
    CSV = "csv"
