"""``computeplane serve``: the whole control plane on one machine, through the same function_app."""

from __future__ import annotations

import ctypes
import importlib
import logging
import socket
import sys
from dataclasses import replace
from datetime import timedelta

import azure.functions as func
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from computeplane.local_servers import forget_server, record_server
from shared import bootstrap
from shared.adapters.job_sandbox import JobSandbox
from shared.api.arm.context import arm_context_of
from shared.api.auth import load_or_create_keys
from shared.config import Settings
from shared.handlers.sweep import sweep
from shared.local.host import LocalFunctionsHost, QueueReceiver
from shared.local.tls import ensure_tls_files
from shared.telemetry.http import enable_access_log
from shared.telemetry.log_context import add_ids_to_logs
from shared.telemetry.setup import TelemetrySettings, configure_telemetry

log = logging.getLogger("computeplane")


def asgi_app_of(app: func.FunctionApp) -> ASGIApp:
    """The ASGI app behind the AsgiFunctionApp's HTTP function (what Azure serves through its middleware)."""
    middleware = getattr(app, "middleware", None)
    inner = getattr(middleware, "_app", None)
    if inner is None:
        raise RuntimeError("function_app.app is not an AsgiFunctionApp; nothing to serve over HTTP")
    return inner  # type: ignore[no-any-return]


def by_prefix(api: ASGIApp, identity: ASGIApp | None) -> ASGIApp:
    """/identity/... to the token endpoint (as a mount: its routes see the rest of the path), all else to the API.
    A plain prefix test, unlike a router's path regex, also sends paths with odd characters to the API's errors."""
    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if identity is not None and scope["type"] == "http" and (path == "/identity" or
                                                                 path.startswith("/identity/")):
            root = scope.get("root_path", "") + "/identity"
            await identity(dict(scope, root_path=root, path=path[len("/identity"):] or "/"), receive, send)
            return
        await api(scope, receive, send)

    return dispatch


def _not_dumpable() -> None:
    """PR_SET_DUMPABLE 0: a job running as the same user cannot read /proc/<server>/environ or its memory, unless
    it holds CAP_SYS_PTRACE (as root does): the job sandbox's own user namespace takes that away."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(4, 0)  # PR_SET_DUMPABLE = 4


def job_isolation(sandbox: JobSandbox | None, settings: Settings) -> str:
    """One line for the start-up banner: whether local jobs are sandboxed, and if not why not."""
    if settings.azure_batch is not None:
        return f"none: jobs run on Azure Batch pools of account {settings.azure_batch.account_name}"
    if sandbox is not None:
        return "sandboxed (own user and mount namespaces; the data directory is hidden from jobs)"
    if settings.job_sandbox == "off":
        return "NOT isolated (COMPUTEPLANE_JOB_SANDBOX=off): jobs can read the data directory"
    return "NOT isolated: the job sandbox cannot work here (see the warning above); jobs can read the data directory"


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no obstacle
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def service_bus_receiver(settings: Settings) -> QueueReceiver:
    """Feed the queue triggers from a real namespace (or the official emulator) with peek-lock sessions."""
    from shared.adapters.servicebus_bus import ServiceBusPump, service_bus_client_factory

    client_factory = service_bus_client_factory(settings)
    return lambda qf: ServiceBusPump(client_factory, qf.queue, qf.call, takes_batch=qf.takes_batch).run


def serve(settings: Settings, host: str, port: int, *, sweep_seconds: float | None = None,
          announce: bool = True, tls: bool = False) -> None:
    _not_dumpable()
    tls_files = ensure_tls_files(settings.data_dir, host) if tls else None
    base_url = f"{'https' if tls else 'http'}://{host}:{port}"
    settings = replace(settings, identity_endpoint=settings.identity_endpoint or f"{base_url}/identity")
    configure_telemetry(TelemetrySettings.from_env())  # OTLP, console, or off
    add_ids_to_logs()
    enable_access_log()
    container = bootstrap.build(settings)
    # Probed now rather than at the first job: the warning shows at start, and `required` refuses to start.
    sandbox = container.local_nodes.job_sandbox() if container.local_nodes is not None else None
    container.api_keys, key_file = load_or_create_keys(settings.data_dir, settings.api_key)
    if port_is_free(host, port):  # else uvicorn fails to start: the server holding the port keeps its record
        record_server(port, settings.data_dir, key_file)  # so `computeplane keys show` finds it from anywhere
    bootstrap.use_container(container)
    arm_context_of(container)  # reads the COMPUTEPLANE_ARM_* settings now: a bad one stops the start, not a request
    function_app = importlib.import_module("function_app")
    functions_host = LocalFunctionsHost(function_app.app, container.queue, sweep_seconds=sweep_seconds,
                                        external_receiver=None if container.queue else service_bus_receiver(settings))

    http_app = by_prefix(asgi_app_of(function_app.app), container.identity_app)

    # A restart finds every cluster that was busy: look one resync period ahead, so lost runs are requeued now.
    sweep(container.deps, horizon=timedelta(seconds=settings.resync_seconds))
    bootstrap.freeze_startup_objects()
    functions_host.start()
    if announce:
        print(f"ComputePlane API:  {base_url}/api", flush=True)
        print(f"OpenAPI docs:      {base_url}/api/docs", flush=True)
        print(f"Data directory:    {settings.data_dir.resolve()}", flush=True)
        print(f"Job directories:   {settings.runs_root}", flush=True)
        print(f"Local jobs:        {job_isolation(sandbox, settings)}", flush=True)
        print(f"API keys:          {key_file.resolve()} (send one as the x-functions-key header; "
              "`computeplane keys show` prints it; edits apply without a restart)", flush=True)
        print(f"Functions:         {', '.join(f.name for f in functions_host.queue_functions)} (queues), "
              f"{', '.join(f.name for f in functions_host.timer_functions)} (timer)", flush=True)
        print(f"ARM endpoint:      {base_url}/ (cloud metadata: {base_url}/metadata/endpoints)", flush=True)
        if tls_files is not None:
            print("HTTPS with a local CA; for the Azure SDKs and az, export:", flush=True)
            for line in tls_files.exports():
                print(f"  {line}", flush=True)
    server = uvicorn.Server(uvicorn.Config(
        http_app, host=host, port=port, log_level="warning", lifespan="off",
        ssl_certfile=tls_files.server_certificate if tls_files else None,
        ssl_keyfile=tls_files.server_key if tls_files else None))
    try:
        server.run()
    finally:
        if container.local_nodes is not None:
            container.local_nodes.begin_shutdown()  # before the pumps stop: runs they end are ours, not failures
        functions_host.stop()
        if container.local_nodes is not None:
            container.local_nodes.stop_all()
        forget_server(port)
        print("ComputePlane stopped.", flush=True)
