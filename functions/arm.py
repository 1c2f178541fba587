"""The ARM-shaped API in Azure: one anonymous HTTP function, ``/api/arm/{*path}``, handing requests to the same ASGI
app. Anonymous because ARM clients send an Entra bearer token, never a function key: the app checks the token
(``shared/api/arm/tokens.py``). ComputePlane's ``resourceManager`` in Azure is then ``https://<app>/api/arm/``.
"""

from __future__ import annotations

import azure.functions as func
from starlette.types import ASGIApp

ROUTE_PREFIX = "arm"  # under the Functions host's own /api prefix: /api/arm (shared/api/arm/paths.py strips it)


def blueprint(api: ASGIApp) -> func.Blueprint:
    bp = func.Blueprint()  # type: ignore[no-untyped-call]  # azure-functions leaves __init__ untyped
    middleware = func.AsgiMiddleware(api)  # type: ignore[no-untyped-call]

    @bp.route(route=f"{ROUTE_PREFIX}/{{*path}}", methods=["GET", "PUT", "PATCH", "POST", "DELETE"],
              auth_level=func.AuthLevel.ANONYMOUS)
    async def arm(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
        return await middleware.handle_async(req, context)  # type: ignore[no-any-return]

    return bp
