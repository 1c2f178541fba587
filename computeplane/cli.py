"""The ``computeplane`` command."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="ComputePlane: ML compute clusters with AmlCompute semantics.", no_args_is_help=True,
                  pretty_exceptions_enable=False)


@app.callback()
def cli() -> None:
    """ComputePlane: ML compute clusters with AmlCompute semantics."""


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the API.")] = 7071,
    data_dir: Annotated[Path, typer.Option(help="Where state, queue, runs and keys live.",
                                           envvar="COMPUTEPLANE_DATA_DIR")] = Path(".computeplane"),
    sweep_seconds: Annotated[float | None, typer.Option(
        help="Run the timer every N seconds instead of its NCRONTAB schedule (for tests).")] = None,
    log_level: Annotated[str, typer.Option(help="Logging level.")] = "WARNING",
) -> None:
    """Run the control plane locally: embedded SQLite store and queue, local nodes, local token endpoint."""
    from shared.config import Settings
    from shared.local.serve import serve as run

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env({**os.environ, "COMPUTEPLANE_DATA_DIR": str(data_dir)})
    run(settings, host, port, sweep_seconds=sweep_seconds)


def main() -> None:
    app()
