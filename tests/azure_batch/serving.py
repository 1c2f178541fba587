"""Serve the Batch stand-in over HTTPS (a throwaway CA) and the local token endpoint that gives the control plane
its managed-identity tokens, each under real uvicorn on a free 127.0.0.1 port."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp

from shared.adapters.clock import SystemClock
from shared.adapters.identity_grants import SqliteIdentityGrants
from shared.adapters.token_endpoint import create_token_endpoint_app
from shared.adapters.token_signer import TokenSigner
from shared.domain.identity import ManagedIdentity, user_assigned_from_arm_id
from tests.azure_batch.standin_app import create_standin_app
from tests.azure_batch.standin_state import BatchWorld
from tests.azure_batch.tls import ServerCertificate

SUBSCRIPTION = str(uuid.UUID(int=12))
NODE_RESOURCE_GROUP = "rg-computeplane-nodes"
ACCOUNT = "cpbatch"
CONTROL_PLANE = user_assigned_from_arm_id(f"/subscriptions/{SUBSCRIPTION}/resourcegroups/rg-computeplane/providers/"
                                          "Microsoft.ManagedIdentity/userAssignedIdentities/id-computeplane")


@contextmanager
def serving(app: ASGIApp, certificate: ServerCertificate | None = None) -> Iterator[str]:
    listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listening.bind(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    tls = {"ssl_certfile": str(certificate.cert_file), "ssl_keyfile": str(certificate.key_file)} if certificate else {}
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", **tls))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"{'https' if certificate else 'http'}://127.0.0.1:{port}"
    finally:
        # force_exit: a client's idle keep-alive TLS connection would otherwise hold the shutdown for a second
        server.should_exit = server.force_exit = True
        thread.join(10)
        listening.close()


@dataclass
class StandIn:
    url: str
    world: BatchWorld

    def pool_node_ids(self, pool: str) -> list[str]:
        with self.world.lock:
            return list(self.world.pools[pool].nodes) if pool in self.world.pools else []


@contextmanager
def batch_standin(work_dir: Path, certificate: ServerCertificate, **timings: float) -> Iterator[StandIn]:
    world = BatchWorld(work_dir, **timings)
    try:
        with serving(create_standin_app(world), certificate) as url:
            yield StandIn(url, world)
    finally:
        world.close()


@dataclass
class TokenEndpoint:
    base_url: str  # what AZURE_POD_IDENTITY_AUTHORITY_HOST points at (azure-identity's IMDS protocol)
    signer: TokenSigner
    identity: ManagedIdentity


@contextmanager
def control_plane_token_endpoint(state_dir: Path) -> Iterator[TokenEndpoint]:
    """The local token endpoint, serving the control plane's own identity on its IMDS route."""
    signer = TokenSigner(state_dir / "keys")
    parent = FastAPI()
    parent.mount("/identity", create_token_endpoint_app(SqliteIdentityGrants(state_dir / "grants.sqlite"), signer,
                                                        SystemClock(), control_plane_identity=CONTROL_PLANE))
    with serving(parent) as url:
        yield TokenEndpoint(f"{url}/identity", signer, CONTROL_PLANE)
