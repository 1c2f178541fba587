"""``computeplane token issue``: a bearer token for ComputePlane's ARM-shaped API, signed with the local server's key.

For scripts and ``az rest --headers``; the SDKs get theirs themselves through the token route (see the README).
It needs the data directory (the signing key lives there), so it works on the machine that runs ``serve``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from computeplane.cli_context import GlobalOptionsCommand, settings_of

token_app = typer.Typer(help="Bearer tokens for the ARM-shaped API (the Azure SDKs and az).", no_args_is_help=True)


@token_app.command("issue", cls=GlobalOptionsCommand)
def issue_token(
    ctx: typer.Context,
    workspace: Annotated[list[str] | None, typer.Option(
        "--for-workspace", help="Limit the token to this workspace (repeatable); default: every workspace.",
        show_default=False)] = None,
    minutes: Annotated[int, typer.Option(min=1, max=24 * 60, help="Lifetime in minutes.")] = 60,
    data_dir: Annotated[Path, typer.Option(help="The server's data directory (its signing key is there).",
                                           envvar="COMPUTEPLANE_DATA_DIR")] = Path(".computeplane"),
) -> None:
    """Print a token whose audience is the server at --endpoint (https://host:port, as `serve --tls` prints)."""
    from shared.adapters.token_signer import TokenSigner
    from shared.api.arm.tokens import LocalTokens
    from shared.api.auth import KEY_FILE

    if not (data_dir / KEY_FILE).exists():  # made by serve at its first start: this is not a server's directory
        raise typer.BadParameter(f"{data_dir} is not a ComputePlane data directory: start `computeplane serve "
                                 f"--data-dir {data_dir}` once, or pass the one it uses", param_hint="--data-dir")
    audience = settings_of(ctx).endpoint
    token, _ = LocalTokens(TokenSigner(data_dir / "keys")).issue(audience, workspace, datetime.now(UTC),
                                                                 timedelta(minutes=minutes))
    typer.echo(token)
