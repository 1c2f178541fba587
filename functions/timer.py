"""The timer: every minute, reconcile the clusters that are due (the safety net behind scheduled messages)."""

from __future__ import annotations

import azure.functions as func

from shared.bootstrap import container
from shared.handlers.sweep import sweep

SWEEP_SCHEDULE = "0 */1 * * * *"  # NCRONTAB: second minute hour day month day-of-week

bp = func.Blueprint()  # type: ignore[no-untyped-call]  # azure-functions leaves __init__ untyped


@bp.timer_trigger(arg_name="timer", schedule=SWEEP_SCHEDULE, run_on_startup=False, use_monitor=True)
def reconcile_due_clusters(timer: func.TimerRequest) -> None:
    sweep(container().deps)
