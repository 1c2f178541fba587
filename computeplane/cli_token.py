"""``computeplane token issue`` and ``computeplane token env``: what the real Azure clients need to reach a local
ComputePlane's ARM-shaped API.

``issue`` prints a bearer token signed with the local server's key (for scripts and ``az rest --headers``);
``env`` prints the variables that point azureml-core, azure-ai-ml and ``az`` at the server, to ``eval`` in the shell
that runs them (the SDKs then get their tokens themselves through the token route). Both read the data
directory, so they work on the machine that runs ``serve``.
"""

from __future__ import annotations

import json
import shlex
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


@token_app.command("env", cls=GlobalOptionsCommand)
def sdk_environment(
    ctx: typer.Context,
    data_dir: Annotated[Path, typer.Option(help="The server's data directory (its CA and API keys are there).",
                                           envvar="COMPUTEPLANE_DATA_DIR")] = Path(".computeplane"),
) -> None:
    """Print `export` lines for azureml-core, azure-ai-ml and az: run `eval "$(computeplane --endpoint
    https://127.0.0.1:7071 token env)"` in the shell that runs them."""
    endpoint = settings_of(ctx).endpoint.rstrip("/")
    if not endpoint.startswith("https://"):
        raise typer.BadParameter("the Azure SDKs send tokens over HTTPS only: start `computeplane serve --tls` and "
                                 "pass its https:// address", param_hint="--endpoint")
    ca = (data_dir / "tls" / "ca.pem").resolve()
    keys = data_dir / "api-keys.json"
    if not ca.exists() or not keys.exists():
        raise typer.BadParameter(f"{data_dir} holds no local CA or API keys: start `computeplane serve --tls "
                                 f"--data-dir {data_dir}` once, or pass the data directory it uses",
                                 param_hint="--data-dir")
    key = settings_of(ctx).api_key or json.loads(keys.read_text())["keys"][0]["key"]
    token_route = f"{endpoint}/arm-identity/token"
    variables = {
        "REQUESTS_CA_BUNDLE": str(ca), "SSL_CERT_FILE": str(ca),  # requests (v1, az) and ssl (azure-core)
        "ARM_CLOUD_METADATA_URL": f"{endpoint}/metadata/endpoints?api-version=2019-05-01",  # v1 and v2
        "AZUREML_CURRENT_CLOUD": "ComputePlane",  # v1: take the cloud from that URL without asking Azure
        "IDENTITY_ENDPOINT": token_route, "IDENTITY_HEADER": key,  # ManagedIdentityCredential, az login --identity
        "MSI_ENDPOINT": token_route, "MSI_SECRET": key,  # v1's MsiAuthentication (msrestazure) ...
        "APPSETTING_WEBSITE_SITE_NAME": "computeplane",  # ... which sends MSI_SECRET only "on App Service"
    }
    for name, value in variables.items():
        typer.echo(f"export {name}={shlex.quote(value)}")
