"""In Azure the ARM paths reach the app through the anonymous ``arm`` function (``/api/arm/{*path}``): called here
as the Functions host calls it, with azure-functions' own request and ASGI middleware."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

import azure.functions as func
import pytest

from shared import bootstrap
from shared.config import Settings

AUDIENCE = "api://computeplane-in-azure"
APP_URL = "https://computeplane-test.azurewebsites.net"


@pytest.fixture
def arm_function(tmp_path: Path) -> Iterator[Any]:
    settings = Settings(data_dir=tmp_path / "data", arm_audience=AUDIENCE, arm_tenant_id="contoso-tenant")
    bootstrap.use_container(bootstrap.build(settings))  # as in Azure: no API keys, so Entra tokens
    from function_app import app

    app.functions_bindings = None  # the host indexes once per process; forget it, as the index tests do
    try:
        yield next(f for f in app.get_functions() if f.get_function_name() == "arm").get_user_function()
    finally:
        bootstrap.use_container(None)


def call(function: Any, method: str, path: str, params: dict[str, str]) -> func.HttpResponse:
    # The host hands over the whole URL, query included (the ASGI middleware reads the query from it).
    request = func.HttpRequest(method=method, url=f"{APP_URL}/api/arm{path}?{urlencode(params)}", params=params,
                               headers={}, body=b"")
    context = SimpleNamespace(function_directory=None, function_name="arm", invocation_id="test",
                              thread_local_storage=None, trace_context=None, retry_context=None)
    return asyncio.run(function(request, context))  # type: ignore[no-any-return]


def test_the_metadata_served_by_the_function_names_its_own_url_and_audience(arm_function: Any) -> None:
    answer = call(arm_function, "GET", "/metadata/endpoints", {"api-version": "2022-09-01"})
    document = json.loads(answer.get_body())
    assert answer.status_code == 200
    assert document["resourceManager"] == f"{APP_URL}/api/arm/"
    assert document["authentication"]["audiences"] == [AUDIENCE, f"{AUDIENCE}/"]
    assert document["authentication"]["loginEndpoint"] == "https://login.microsoftonline.com/"


def test_computes_through_the_function_need_an_entra_token(arm_function: Any) -> None:
    answer = call(arm_function, "GET", "/subscriptions/s/resourceGroups/rg/providers/"
                                       "Microsoft.MachineLearningServices/workspaces/default/computes",
                  {"api-version": "2024-04-01"})
    assert answer.status_code == 401
    assert json.loads(answer.get_body())["error"]["code"] == "InvalidAuthenticationToken"
