"""``computeplane simulate``: what would this cluster cost, and how long would its jobs wait, for a job history.

It replays the jobs through ComputePlane's own reconcile in virtual time (``shared.sim``), locally: no server.
Register it in ``computeplane/cli.py`` with ``app.command("simulate", cls=GlobalOptionsCommand)(simulate)``.
The simulator is imported when the command runs, so other commands do not pay for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from computeplane.cli_context import settings_of
from computeplane.cli_output import comparison_table, print_json, stdout_console
from shared.sim.names import PolicyName, WorkloadFormat

if TYPE_CHECKING:
    from shared.sim.metrics import PolicyMetrics


def simulate(
    ctx: typer.Context,
    jobs: Annotated[Path, typer.Option(
        "--jobs", exists=True, dir_okay=False, readable=True,
        help="Job history: a CSV of submit_time (seconds or ISO-8601), duration (seconds), node_count; or a "
             "Philly runtime file or the openb pod list.")],
    idle_seconds: Annotated[int, typer.Option(
        help="The cluster's idle_seconds_before_scaledown (ComputePlane; the adaptive policy's cap).")] = 1800,
    policy: Annotated[PolicyName, typer.Option(help="The scaling policy to simulate.")] = PolicyName.COMPUTEPLANE,
    workload_format: Annotated[WorkloadFormat | None, typer.Option(
        "--format", help="Trace format (default: detected from the header).", show_default=False)] = None,
    max_nodes: Annotated[int, typer.Option(help="The cluster's max_nodes.")] = 100,
    vm_size: Annotated[str, typer.Option(help="VM size (prices from the catalogue).")] = "Standard_NC6s_v3",
    boot_seconds: Annotated[float, typer.Option(help="Seconds from asking for a node to running on it.")] = 120.0,
    preemption_rate: Annotated[float | None, typer.Option(
        help="Low-priority nodes, preempted this many times per node-hour.", show_default=False)] = None,
    preemption_trace: Annotated[Path | None, typer.Option(
        exists=True, dir_okay=False, readable=True,
        help="Low-priority nodes, preempted as a spot availability trace (JSON, e.g. shared/data/preemption) shows.",
        show_default=False)] = None,
    checkpoint_seconds: Annotated[int | None, typer.Option(
        help="Low priority: jobs checkpoint this often, so a preemption loses only the work since the last one.",
        show_default=False)] = None,
    low_priority_fallback: Annotated[str, typer.Option(
        help="Low priority: ComputePlane's fallback to dedicated nodes: on, off, preemptions[:N], "
             "lost_time[:SECONDS] or deadline.")] = "on",
    days: Annotated[float | None, typer.Option(
        help="philly: days of synthesized arrivals; other traces: only jobs submitted within this many days.",
        show_default=False)] = None,
    seed: Annotated[int, typer.Option(help="Seed of every random draw (same seed, same figures).")] = 1,
    compare: Annotated[bool, typer.Option("--compare", help="Also run the peer policies side by side.")] = False,
) -> None:
    """What would this cluster cost, and how long would jobs wait? Replays a job history through ComputePlane's
    reconcile (node boot, idle timeout, gang scheduling) and prints node-hours, cost and waits."""
    from shared.domain.errors import InvalidField
    from shared.domain.vm_sizes import load_catalogue
    from shared.sim.compare import peer_policies, run_policies
    from shared.sim.report import footnotes, side_by_side
    from shared.sim.scenario import ScenarioOptions, build_scenario, describe, policy_named

    try:
        load_catalogue().get(vm_size)
    except InvalidField as exc:
        raise typer.BadParameter(exc.rule, param_hint="--vm-size") from None
    from shared.domain.low_priority import fallback_from_text
    from shared.sim.recovery import RECOVER_FOREVER, computeplane_fallback

    try:
        fallback = fallback_from_text(low_priority_fallback)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--low-priority-fallback") from None
    recovery = RECOVER_FOREVER if fallback is None else computeplane_fallback(fallback)
    options = ScenarioOptions(workload=jobs, workload_format=workload_format, preemption_rate=preemption_rate,
                              preemption_trace=preemption_trace, seed=seed, days=days, max_nodes=max_nodes,
                              vm_size=vm_size, boot_seconds=boot_seconds, checkpoint_seconds=checkpoint_seconds)
    try:
        workload, config = build_scenario(options)
    except (ValueError, KeyError) as exc:  # a malformed file: the loaders name the file, line and column
        raise typer.BadParameter(str(exc), param_hint="--jobs") from None
    chosen = policy_named(policy, boot_seconds, idle_seconds, recovery)
    policies = [chosen] + ([p for p in peer_policies(boot_seconds, idle_seconds, recovery) if p.label != chosen.label]
                           if compare else [])
    metrics = run_policies(workload, policies, config)
    if settings_of(ctx).json:
        print_json([_as_json(m) for m in metrics])
        return
    out = stdout_console()
    for line in describe(workload, config):
        out.print(line)
    headers, rows = side_by_side(metrics, config.vm().price_per_hour(config.priority))
    out.print(comparison_table("Simulated cost and waits", headers, rows))
    for note in footnotes(metrics):
        out.print(f"  {note}")


def _as_json(metrics: PolicyMetrics) -> dict[str, object]:
    import dataclasses

    body = dataclasses.asdict(metrics)
    body["ratio_to_lower_bound"] = metrics.ratio_to_lower_bound
    body["ratio_to_ideal"] = metrics.ratio_to_ideal
    body["cost_share_of_dedicated"] = metrics.cost_share_of_dedicated
    return body
