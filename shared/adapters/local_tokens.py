"""TokenProvider for the local runtime: each job attempt gets its own secret for the local token endpoint,
granting exactly the identities of its cluster."""

from __future__ import annotations

from shared.adapters.identity_grants import SqliteIdentityGrants, new_job_secret
from shared.adapters.token_endpoint import job_identity_environment
from shared.adapters.token_signer import TokenSigner
from shared.domain.cluster import Cluster
from shared.ports import Clock


class LocalTokens:
    def __init__(self, grants: SqliteIdentityGrants, endpoint_base_url: str, signer: TokenSigner, clock: Clock,
                 denied_resources: frozenset[str] = frozenset()) -> None:
        """``denied_resources`` simulates missing role assignments (COMPUTEPLANE_DENIED_RESOURCES)."""
        self._grants, self._endpoint = grants, endpoint_base_url
        self._signer, self._clock, self._denied = signer, clock, denied_resources

    def check_access(self, cluster: Cluster, resource: str) -> str | None:
        identity = cluster.identity.default
        if identity is None:
            return (f"the cluster has no managed identity, and the system needs one to reach {resource} "
                    "(assign one with add_identity)")
        if resource.rstrip("/") in {d.rstrip("/") for d in self._denied}:
            return (f"{identity.description} ({identity.client_id}) has no role assignment that grants access "
                    f"to {resource}")
        self._signer.issue(identity, resource, self._clock.now())
        return None

    def job_environment(self, cluster: Cluster, job_id: str, attempt: int) -> dict[str, str]:
        identities = list(cluster.identity.identities)
        default = cluster.identity.default
        secret = new_job_secret()
        self._grants.grant(secret, job_id, f"{cluster.workspace}/{cluster.name}", identities, None)
        return job_identity_environment(self._endpoint, secret, default.client_id if default else None)

    def revoke_job(self, job_id: str) -> None:
        self._grants.revoke_job(job_id)

    def revoke_identity(self, client_id: str, cluster_key: str | None = None) -> None:
        self._grants.revoke_identity(client_id, cluster_key=cluster_key)
