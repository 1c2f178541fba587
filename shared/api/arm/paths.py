"""ARM matches the keywords of a resource path without regard to case (clients send both ``resourceGroups`` and
``resourcegroups``) and takes a doubled leading slash; the router matches exactly, so paths are put in one form
before routing."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

KEYWORDS = {k.lower(): k for k in (
    "subscriptions", "resourceGroups", "providers", "Microsoft.MachineLearningServices", "workspaces", "computes",
    "locations", "vmSizes", "usages", "listNodes", "computeOperationsStatus", "rp")}
ARM_ROOTS = ("/subscriptions", "/rp/")
FUNCTIONS_PREFIX = "/api/arm"  # the Functions host's /api + functions/arm.py's route


class ArmPathCasing:
    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path == FUNCTIONS_PREFIX or path.startswith(FUNCTIONS_PREFIX + "/"):
            # In Azure the ARM paths arrive under the anonymous function's route (functions/arm.py): the prefix
            # becomes the root path, so the URLs the app writes (operations, discovery, metadata) keep it.
            path = path[len(FUNCTIONS_PREFIX):] or "/"
            scope = dict(scope, path=path, raw_path=path.encode(), root_path=scope.get("root_path", "") +
                         FUNCTIONS_PREFIX)
        if path.startswith("//"):  # azureml-core joins "https://host/" and "/subscriptions/...": ARM takes both
            path = "/" + path.lstrip("/")
            scope = dict(scope, path=path, raw_path=path.encode())
        if path.lower().startswith(ARM_ROOTS):
            # Keywords sit at even depths after the root (name, value, name, value...); only they are touched.
            parts = path.split("/")
            start = 3 if parts[1].lower() == "rp" else 1
            for index in range(start, len(parts), 2):
                parts[index] = KEYWORDS.get(parts[index].lower(), parts[index])
            if start == 3:
                parts[1], parts[2] = "rp", "workspaces"
            # "providers/<namespace>" breaks the name/value rhythm: the namespace's casing is fixed wherever it is.
            parts = [KEYWORDS.get(p.lower(), p) if p.lower() == "microsoft.machinelearningservices" else p
                     for p in parts]
            new_path = "/".join(parts)
            scope = dict(scope, path=new_path, raw_path=new_path.encode())
        await self._app(scope, receive, send)
