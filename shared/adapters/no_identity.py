"""A TokenProvider for runtimes with no identity service: jobs get no token endpoint."""

from __future__ import annotations

from shared.domain.cluster import Cluster


class NoIdentityTokens:
    def job_environment(self, cluster: Cluster, job_id: str, attempt: int) -> dict[str, str]:
        return {}

    def revoke_job(self, job_id: str) -> None:
        return None

    def revoke_identity(self, client_id: str, cluster_key: str | None = None) -> None:
        return None

    def check_access(self, cluster: Cluster, resource: str) -> str | None:
        return "this runtime has no identity service to get a token with"
