"""What v1's ``wait_for_completion(show_output=True)`` prints, so notebooks and logs look as they did."""

from __future__ import annotations

import sys
from typing import Any

from computeplane.waiting import CLUSTER_FAILED_STATES, cluster_is_ready


class StateDots:
    """The state when it changes (a new line), a dot for each poll while it stays the same."""

    def __init__(self, show_output: bool) -> None:
        self._show = show_output
        self._current: str | None = None

    def show(self, state: str) -> None:
        if self._current is None:
            self.write(state)
        elif state != self._current:
            self.write(f"\n{state}")
        else:
            self.write(".")
        self._current = state

    def write(self, text: str) -> None:
        if self._show:
            sys.stdout.write(text)
            sys.stdout.flush()

    def end(self) -> None:
        self.write("\n")


def report_wait_outcome(cluster: dict[str, Any], min_node_count: int | None, timed_out: bool) -> None:
    print("AmlCompute wait for completion finished\n")
    state = str(cluster.get("provisioning_state"))
    if cluster_is_ready(cluster, min_node_count):
        print("Minimum number of nodes requested have been provisioned")
    elif timed_out:
        print("Wait timeout has been reached")
        print(f'Current provisioning state of AmlCompute is "{state}" and current node count is '
              f'"{cluster.get("current_node_count")}"')
    elif state in CLUSTER_FAILED_STATES:
        print(f'Terminal state of "{state}" has been reached\n')
        if state == "Failed":
            print(f"Provisioning errors: {cluster.get('errors')}\n")
    elif cluster.get("errors"):
        print(f"There were errors reported from AmlCompute:\n{cluster.get('errors')}")
