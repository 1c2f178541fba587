"""Following a job's log while it runs (``wait_for_job(on_output=...)``, what the CLI, the client and the v1 SDK's
``show_output`` print): each node's lines come out whole, however the nodes' logs grow between two polls."""

from __future__ import annotations

from typing import Any, cast

from computeplane.client import ComputePlaneClient
from computeplane.waiting import log_sections, wait_for_job


class Polled:
    """A job seen through successive polls: its state, then its log (one attempt)."""

    def __init__(self, logs: list[str]) -> None:
        self.logs, self.polls = logs, 0

    def get_job(self, job_id: str) -> dict[str, Any]:
        self.polls += 1
        done = self.polls >= len(self.logs)
        return {"id": job_id, "state": "Completed" if done else "Running", "attempts": 1}

    def job_logs(self, job_id: str, attempt: int | None = None) -> dict[str, Any]:
        return {"logs": self.logs[min(self.polls, len(self.logs)) - 1]}


def followed(logs: list[str]) -> str:
    out: list[str] = []
    wait_for_job(cast(ComputePlaneClient, Polled(logs)), "j", poll_interval=0,
                 on_output=lambda _attempt, text: out.append(text))
    return "".join(out)


def test_two_nodes_whose_logs_grow_after_both_appeared_are_followed_line_by_line() -> None:
    """The case a whole-text offset got wrong: both headers served first, the output after them."""
    shown = followed(["===== node-0 =====\n===== node-1 =====\n",
                      "===== node-0 =====\nhello from node 0\n===== node-1 =====\nhello from node 1\n",
                      "===== node-0 =====\nhello from node 0\nbye 0\n===== node-1 =====\nhello from node 1\n"])
    assert shown == ("===== node-0 =====\nhello from node 0\n===== node-1 =====\nhello from node 1\n"
                     "===== node-0 =====\nbye 0\n")  # node 0 announced again: the line is its own
    assert log_sections(shown)["node-1"] == "hello from node 1\n"


def test_a_single_node_log_that_becomes_two_is_not_repeated() -> None:
    shown = followed(["hello from node 0\n",
                      "===== node-0 =====\nhello from node 0\n===== node-1 =====\nhello from node 1\n"])
    assert shown.count("hello from node 0") == 1 and "hello from node 1\n" in shown


def test_a_single_node_log_is_passed_on_as_it_grows() -> None:
    assert followed(["a\n", "a\nb\n", "a\nb\nc\n"]) == "a\nb\nc\n"
