"""The figures as text cells: one column per policy (plus the lower bound), and the frontier's rows. Rendering
(rich tables) is left to the callers, the benchmark script and the ``computeplane simulate`` command."""

from __future__ import annotations

import math
from collections.abc import Callable

from shared.sim.compare import FrontierPoint
from shared.sim.metrics import PolicyMetrics

MISSING = "-"


def _number(value: float, digits: int = 1) -> str:
    return MISSING if math.isnan(value) else f"{value:,.{digits}f}"


def _dollars(value: float) -> str:
    return _number(value, 0 if value >= 1000 else 2)


METRIC_ROWS: list[tuple[str, Callable[[PolicyMetrics], str]]] = [
    ("node-hours", lambda m: _number(m.node_hours)),
    ("lower bound: same job starts (node-hours)", lambda m: _number(m.lower_bound_node_hours)),
    ("node-hours / lower bound", lambda m: _number(m.ratio_to_lower_bound, 3)),
    ("node-hours / ideal (no waits)", lambda m: _number(m.ratio_to_ideal, 3)),
    ("idle node-hours % (boot + idle)", lambda m: _number(100 * m.idle_fraction)),
    ("job wait p50 (s)", lambda m: _number(m.wait_p50_seconds, 0)),
    ("job wait p99 (s)", lambda m: _number(m.wait_p99_seconds, 0)),
    ("job wait mean (s)", lambda m: _number(m.wait_mean_seconds)),
    ("cost ($)", lambda m: _dollars(m.cost_usd)),
    ("cost / all dedicated, no waits (%)", lambda m: _number(100 * m.cost_share_of_dedicated)),
    ("dedicated node-hours (fallback)", lambda m: _number(m.dedicated_node_hours)),
    ("scale operations / job", lambda m: _number(m.scale_operations_per_job, 2)),
    ("preemptions", lambda m: str(m.preemptions)),
    ("node-hours lost to preemption", lambda m: _number(m.preemption_lost_node_hours)),
    ("jobs failed (retries exhausted)", lambda m: str(m.jobs_failed)),
    ("jobs late (after 2x runtime + 10 min) or unfinished", lambda m: str(m.jobs_late)),
    ("peak nodes", lambda m: str(m.peak_nodes)),
]


def side_by_side(metrics: list[PolicyMetrics], price_per_node_hour: float) -> tuple[list[str], list[list[str]]]:
    """Headers (metric, each policy, the ideal) and one row per metric. The ideal is the workload run with no waits
    by a clairvoyant; each policy's lower bound is the clairvoyant optimum for its own job starts."""
    headers = ["metric", *(m.short_label for m in metrics), "ideal (no waits)"]
    ideal = metrics[0].ideal_node_hours if metrics else math.nan
    ideal_cells = {"node-hours": _number(ideal), "node-hours / ideal (no waits)": _number(1.0, 3),
                   "cost ($)": _dollars(ideal * price_per_node_hour),
                   "cost / all dedicated, no waits (%)": _number(
                       100 * ideal * price_per_node_hour / metrics[0].cost_of_dedicated_usd
                       if metrics and metrics[0].cost_of_dedicated_usd else math.nan),
                   "job wait p50 (s)": "0",
                   "job wait p99 (s)": "0", "job wait mean (s)": _number(0.0)}
    rows = [[name, *(cell(m) for m in metrics), ideal_cells.get(name, MISSING)] for name, cell in METRIC_ROWS]
    return headers, rows


def footnotes(metrics: list[PolicyMetrics]) -> list[str]:
    notes = [f"{m.short_label}: {m.label}" for m in metrics]
    for m in metrics:
        if m.unfinished:
            notes.append(f"{m.short_label}: stopped before every job finished (safety limit); figures are partial")
        if m.jobs_never_started or m.jobs_rejected:
            notes.append(f"{m.short_label}: {m.jobs_never_started} job(s) never started, {m.jobs_rejected} rejected")
        if m.ratio_to_ideal < 1:
            why = (f"{m.jobs_failed} job(s) gave up after their retries and never did all their work"
                   if m.jobs_failed else "its waits let a job take a node another job just left, which the no-wait "
                   "schedule cannot (see shared/sim/lower_bound.py)")
            notes.append(f"{m.short_label}: below the ideal: {why}")
    return notes


FRONTIER_HEADERS = ["policy", "node-hours", "x ideal", "wait mean (s)", "wait p50 (s)", "wait p99 (s)",
                    "fixed-timeout wait at same node-hours (s)", "versus the fixed timeouts"]


def frontier_rows(points: list[FrontierPoint]) -> list[list[str]]:
    rows = []
    for p in sorted(points, key=lambda p: p.metrics.node_hours):
        m = p.metrics
        if p.dominated_by:
            verdict = "dominated by " + ", ".join(p.dominated_by)
        elif p.dominates:
            verdict = ("on the frontier; " if p.fixed else "beyond the frontier; ") + "beats " + ", ".join(p.dominates)
        else:
            verdict = "on the frontier"
        at_same_cost = MISSING if p.frontier_wait_at_same_cost is None else _number(p.frontier_wait_at_same_cost)
        rows.append([m.short_label, _number(m.node_hours),
                     _number(m.ratio_to_ideal, 3), _number(m.wait_mean_seconds), _number(m.wait_p50_seconds, 0),
                     _number(m.wait_p99_seconds, 0), at_same_cost, verdict])
    return rows
