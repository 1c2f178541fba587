"""``computeplane keys show``: the API key of a ``computeplane serve`` on this machine, for curl and scripts.

    KEY=$(computeplane keys show)      # exit 2 and a message when no key is found, never an empty key
"""

from __future__ import annotations

import typer

from computeplane.cli_context import GlobalOptionsCommand, settings_of
from computeplane.cli_output import print_json
from computeplane.errors import InvalidInputError
from computeplane.local_servers import discover_key, key_files_for

keys_app = typer.Typer(help="API keys of local servers.", no_args_is_help=True)


@keys_app.command("show", cls=GlobalOptionsCommand)
def show(ctx: typer.Context) -> None:
    """Print the key of the server at --endpoint (found through the record `computeplane serve` keeps of its data
    directory, else COMPUTEPLANE_DATA_DIR or ./.computeplane). With -o json: {"key", "source"}."""
    settings = settings_of(ctx)
    found = discover_key(settings.endpoint)
    if found is None:
        tried = ", ".join(str(p) for p in key_files_for(settings.endpoint))
        where = f"tried {tried}" if tried else "only a server on this machine (127.0.0.1, localhost) has a key file"
        raise InvalidInputError(None, "NoApiKeyFound",
                                f"no API key found for {settings.endpoint} ({where}); is `computeplane serve` "
                                "running on that port? Otherwise pass --api-key or set COMPUTEPLANE_API_KEY.")
    if settings.json:
        print_json({"key": found.key, "source": found.source})
    else:
        typer.echo(found.key)
