"""What every benchmark prints first: the command line and the machine it ran on."""

from __future__ import annotations

import os
import platform
import shlex
import sys

from rich.console import Console


def console() -> Console:
    """Wide enough for side-by-side tables even when the output is a file or a pipe."""
    plain = Console()
    return plain if plain.is_terminal else Console(width=220)


def describe_machine() -> str:
    cores = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    return (f"{platform.machine()} {platform.system()} {platform.release()}, {usable} usable core(s) of {cores}, "
            f"{_cpu_model()}, Python {platform.python_version()} ({platform.python_implementation()})")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def command_line() -> str:
    module = sys.modules["__main__"].__spec__
    program = f"python -m {module.name}" if module is not None else f"python {sys.argv[0]}"
    return " ".join([program, *(shlex.quote(a) for a in sys.argv[1:])])


def print_header(out: Console, title: str) -> None:
    out.print(f"[bold]{title}[/bold]")
    out.print(f"command: {command_line()}")
    out.print(f"machine: {describe_machine()}")


def peak_rss_kb() -> int:
    """This process's peak resident set (VmHWM). Unlike ``ru_maxrss`` it starts afresh at exec, so a child started
    from a large parent does not report the parent's size."""
    try:
        with open("/proc/self/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
