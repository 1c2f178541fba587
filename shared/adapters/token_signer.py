"""Signs Entra-shaped access tokens (RS256 JWTs) for the local token endpoint.

The claims are those of a real managed-identity token (v1 access token), so code that inspects its token
(``appid``, ``oid``, ``xms_mirid``) sees what it would see on Azure. Resources served locally can check the
signature against :meth:`TokenSigner.jwks`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.domain.identity import ManagedIdentity

KEY_FILE_NAME = "token-signing-key.pem"
DEFAULT_TOKEN_LIFETIME = timedelta(hours=1)
LOCAL_TENANT_ID = "00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    not_before: datetime
    expires_on: datetime


class TokenSigner:
    """Signs tokens with an RSA key created on first use and kept in ``key_dir`` (mode 0600), so tokens stay
    verifiable across restarts of the local host and across its processes."""

    def __init__(self, key_dir: Path, *, tenant_id: str = LOCAL_TENANT_ID,
                 lifetime: timedelta = DEFAULT_TOKEN_LIFETIME) -> None:
        self._key_path = Path(key_dir) / KEY_FILE_NAME
        self.tenant_id = tenant_id
        self.lifetime = lifetime
        self._key: rsa.RSAPrivateKey | None = None
        self._lock = threading.Lock()

    @property
    def issuer(self) -> str:
        return f"https://sts.windows.net/{self.tenant_id}/"

    def issue(self, identity: ManagedIdentity, resource: str, now: datetime,
              not_after: datetime | None = None) -> IssuedToken:
        """A token for ``identity`` to call ``resource`` (its audience, exactly as requested, as Entra does).

        ``not_after`` caps the expiry, so a token never outlives the grant it was issued under.
        """
        expires_on = now + self.lifetime
        if not_after is not None and not_after < expires_on:
            expires_on = not_after
        # Entra backdates nbf/iat by 5 minutes for clock skew; tokens here are only seen on this machine.
        claims: dict[str, str | int] = {
            "aud": resource,
            "iss": self.issuer,
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()),
            "exp": int(expires_on.timestamp()),
            "appid": identity.client_id,
            "appidacr": "2",
            "idp": self.issuer,
            "idtyp": "app",
            "oid": identity.principal_id,
            "sub": identity.principal_id,
            "tid": self.tenant_id,
            "uti": secrets.token_urlsafe(16),
            "ver": "1.0",
        }
        if identity.resource_id is not None:
            claims["xms_mirid"] = identity.resource_id
        token = jwt.encode(claims, self._private_key(), algorithm="RS256", headers={"kid": self.key_id})
        return IssuedToken(access_token=token, not_before=now, expires_on=expires_on)

    def sign(self, claims: dict[str, object]) -> str:
        """Any claims, signed with the same key (ComputePlane's own tokens for its ARM-shaped API)."""
        return jwt.encode(claims, self._private_key(), algorithm="RS256", headers={"kid": self.key_id})

    def public_key(self) -> rsa.RSAPublicKey:
        return self._private_key().public_key()

    @property
    def key_id(self) -> str:
        """RFC 7638 thumbprint of the public key: stable for the key, changes if the key file is replaced."""
        jwk = self._public_jwk_members()
        canonical = json.dumps(jwk, sort_keys=True, separators=(",", ":")).encode()
        return _b64url(hashlib.sha256(canonical).digest())

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The key set, shaped like Entra's discovery/keys document."""
        return {"keys": [{**self._public_jwk_members(), "kid": self.key_id, "use": "sig", "alg": "RS256"}]}

    def _public_jwk_members(self) -> dict[str, str]:
        numbers = self.public_key().public_numbers()
        return {"e": _b64url_int(numbers.e), "kty": "RSA", "n": _b64url_int(numbers.n)}

    def _private_key(self) -> rsa.RSAPrivateKey:
        with self._lock:
            if self._key is None:
                self._key = _load_or_create_key(self._key_path)
            return self._key


def _load_or_create_key(path: Path) -> rsa.RSAPrivateKey:
    if not path.exists():
        _create_key_file(path)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError(f"{path} does not hold an RSA private key")
    return key


def _create_key_file(path: Path) -> None:
    """Write a new key without ever exposing a partial or world-readable file. Several processes may start at
    once: each writes its own temporary file and links it into place; the first link wins, the others use it."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(pem)
            file.flush()
            os.fsync(file.fileno())
        with contextlib.suppress(FileExistsError):  # another process won the race; its key is the key
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_int(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))
