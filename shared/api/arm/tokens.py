"""Bearer tokens on the ARM-shaped routes.

Locally, ComputePlane issues them itself (``computeplane token issue``, or the token route that ``az login
--identity`` and ``ManagedIdentityCredential`` reach through ``IDENTITY_ENDPOINT``): RS256 JWTs signed with the
local token endpoint's key, with ``exp`` and ``tid`` (azureml-core decodes the token for its tenant), audience =
ComputePlane's own URL (the ``resourceManager`` its cloud metadata declares), and the claim
``computeplane_workspaces``: the workspaces of the API key they were issued for (``null``: every workspace), so a
token is limited exactly as the key is. A token without that claim (a job's managed-identity token, say) is
refused: only ComputePlane's user tokens manage clusters.

In Azure (``COMPUTEPLANE_ARM_AUTH=entra``), they are Entra ID access tokens checked with PyJWT against the keys
Entra publishes for the tenant (``PyJWKClient``), with issuer (v1 or v2 form of the tenant) and audience
(``COMPUTEPLANE_ARM_AUDIENCE``, ComputePlane's own app id URI, never ARM's) checked. Workspaces come from app roles:
``ComputePlane.All`` for every workspace, ``Workspace.<name>`` for one; no role, no access.
"""

from __future__ import annotations

import secrets
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import jwt

from shared.adapters.token_signer import TokenSigner

WORKSPACES_CLAIM = "computeplane_workspaces"
ALL_WORKSPACES_ROLE = "ComputePlane.All"
WORKSPACE_ROLE_PREFIX = "Workspace."
LOCAL_USER_OBJECT_ID = "5ca1ab1e-0000-4000-8000-000000000001"  # the one local user every local token names
DEFAULT_LIFETIME = timedelta(hours=1)


class TokenRefused(Exception):
    """401: no token, or one that is expired, badly signed, or for another audience or issuer."""


@dataclass(frozen=True)
class Caller:
    workspaces: frozenset[str] | None  # None: every workspace

    def allows(self, workspace: str) -> bool:
        return self.workspaces is None or workspace in self.workspaces


def audiences_of(audience: str) -> list[str]:
    """Clients ask for the resource with or without the trailing slash (v2 strips it, az keeps it)."""
    bare = audience.rstrip("/")
    return [bare, bare + "/"]


@dataclass
class LocalTokens:
    signer: TokenSigner

    def issue(self, audience: str, workspaces: Sequence[str] | None, now: datetime,
              lifetime: timedelta = DEFAULT_LIFETIME) -> tuple[str, datetime]:
        expires = now + lifetime
        claims: dict[str, object] = {
            "aud": audience.rstrip("/"), "iss": self.signer.issuer, "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()), "exp": int(expires.timestamp()), "tid": self.signer.tenant_id,
            "oid": LOCAL_USER_OBJECT_ID, "sub": LOCAL_USER_OBJECT_ID, "idtyp": "user", "ver": "1.0",
            "uti": secrets.token_urlsafe(16), "name": "ComputePlane local user",
            "unique_name": "local-user@computeplane.local", "upn": "local-user@computeplane.local",
            WORKSPACES_CLAIM: sorted(workspaces) if workspaces is not None else None,
        }
        return self.signer.sign(claims), expires

    def check(self, token: str, audience: str) -> Caller:
        claims = _decode(token, self.signer.public_key(), audience, [self.signer.issuer])
        if WORKSPACES_CLAIM not in claims:
            raise PermissionError("this token was not issued for ComputePlane's ARM API (no computeplane_workspaces "
                                  "claim): get one with `computeplane token issue` or the ARM token route")
        listed = claims[WORKSPACES_CLAIM]
        return Caller(None if listed is None else frozenset(listed))


@dataclass
class EntraTokens:
    tenant_id: str
    audience: str
    authority: str = "https://login.microsoftonline.com"
    jwks_url: str | None = None  # default: the tenant's published keys under ``authority``
    ssl_context: ssl.SSLContext | None = None
    _keys: jwt.PyJWKClient | None = field(default=None, init=False, repr=False)

    @property
    def issuers(self) -> list[str]:
        return [f"https://sts.windows.net/{self.tenant_id}/", f"{self.authority}/{self.tenant_id}/v2.0"]

    def check(self, token: str, audience: str) -> Caller:
        del audience  # in Azure the audience is configured, never taken from the request
        if self._keys is None:
            self._keys = jwt.PyJWKClient(self.jwks_url or f"{self.authority}/{self.tenant_id}/discovery/v2.0/keys",
                                         cache_keys=True, lifespan=3600, ssl_context=self.ssl_context)
        try:
            key = self._keys.get_signing_key_from_jwt(token).key
        except jwt.PyJWTError as error:
            raise TokenRefused(f"the token's signing key is not one of the tenant's: {error}") from None
        claims = _decode(token, key, self.audience, self.issuers)
        roles = claims.get("roles") or []
        if ALL_WORKSPACES_ROLE in roles:
            return Caller(None)
        return Caller(frozenset(r[len(WORKSPACE_ROLE_PREFIX):] for r in roles if r.startswith(WORKSPACE_ROLE_PREFIX)))


def _decode(token: str, key: Any, audience: str, issuers: list[str]) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token, key, algorithms=["RS256"], audience=audiences_of(audience), issuer=issuers, leeway=60,
            options={"require": ["exp", "aud", "iss", "tid"]})
    except jwt.ExpiredSignatureError:
        raise TokenRefused("the bearer token has expired; get a new one") from None
    except jwt.InvalidAudienceError:
        raise TokenRefused(f"the bearer token is for another audience; ask for {audience.rstrip('/')}") from None
    except jwt.PyJWTError as error:
        raise TokenRefused(f"the bearer token is not valid here: {error}") from None
    return claims


TokenChecker = LocalTokens | EntraTokens
AuthMode = Literal["local", "entra"]
