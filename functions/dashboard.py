"""The dashboard's page and its files, anonymous in Azure: a browser cannot send a function key when it opens a
page, and the page holds no data (it reads the API with the key the user pastes, sent as x-functions-key)."""

from __future__ import annotations

import azure.functions as func

from shared.dashboard.assets import asset

bp = func.Blueprint()  # type: ignore[no-untyped-call]  # azure-functions leaves __init__ untyped


@bp.route(route="dashboard/{*name}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def dashboard(req: func.HttpRequest) -> func.HttpResponse:
    found = asset(req.route_params.get("name", ""))
    if found is None:
        return func.HttpResponse(status_code=404)
    return func.HttpResponse(found.body, headers=found.headers)
