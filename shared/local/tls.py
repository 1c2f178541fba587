"""HTTPS for ``computeplane serve --tls``: a local certificate authority made once in the data directory, and a
server certificate it signs for this machine's names.

azure-core refuses to send a bearer token over plain http, so the real Azure SDKs and ``az`` need HTTPS. Clients
trust the local CA through ``REQUESTS_CA_BUNDLE`` (requests: azureml-core, az) and ``SSL_CERT_FILE`` (the ssl
module's default context: azure-core's other transports); ``serve`` prints both lines to export. The CA's key never
leaves the data directory (0600) and the CA can sign nothing but server certificates (path length 0).
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_LIFETIME = timedelta(days=3650)
SERVER_LIFETIME = timedelta(days=365)
RENEW_BEFORE = timedelta(days=30)
SERVER_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class TlsFiles:
    ca_certificate: Path
    server_certificate: Path
    server_key: Path

    def exports(self) -> list[str]:
        """The lines a shell runs so that clients on this machine trust the server."""
        return [f"export REQUESTS_CA_BUNDLE={self.ca_certificate}", f"export SSL_CERT_FILE={self.ca_certificate}"]


def ensure_tls_files(data_dir: Path, host: str, now: datetime | None = None) -> TlsFiles:
    """The CA (created at first use) and a server certificate valid for ``host`` and the loopback names, renewed
    when it is near its end or does not cover ``host``."""
    now = now or datetime.now(UTC)
    directory = data_dir / "tls"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    ca_key_path = directory / "ca-key.pem"
    if not files.ca_certificate.exists() or not ca_key_path.exists():
        ca_key = ec.generate_private_key(ec.SECP256R1())
        _write_key(ca_key_path, ca_key)
        files.ca_certificate.write_bytes(_ca_certificate(ca_key, now).public_bytes(serialization.Encoding.PEM))
    loaded = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
    if not isinstance(loaded, ec.EllipticCurvePrivateKey):
        raise TypeError(f"{ca_key_path} does not hold the local CA's EC key")
    ca_key = loaded
    ca = x509.load_pem_x509_certificate(files.ca_certificate.read_bytes())
    names = tuple(dict.fromkeys((*SERVER_NAMES, host)))
    if _needs_new_server_certificate(files, names, now):
        key = ec.generate_private_key(ec.SECP256R1())
        _write_key(files.server_key, key)
        certificate = _server_certificate(key, ca, ca_key, names, now)
        files.server_certificate.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return files


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(pem)


def _ca_certificate(key: ec.EllipticCurvePrivateKey, now: datetime) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"ComputePlane local CA {os.uname().nodename}")])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + CA_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))


def _alternative_names(names: tuple[str, ...]) -> list[x509.GeneralName]:
    result: list[x509.GeneralName] = []
    for name in names:
        try:
            result.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            result.append(x509.DNSName(name))
    return result


def _server_certificate(key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey,
                        names: tuple[str, ...], now: datetime) -> x509.Certificate:
    return (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[-1])]))
            .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + SERVER_LIFETIME)
            .add_extension(x509.SubjectAlternativeName(_alternative_names(names)), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))


def _needs_new_server_certificate(files: TlsFiles, names: tuple[str, ...], now: datetime) -> bool:
    if not files.server_certificate.exists() or not files.server_key.exists():
        return True
    certificate = x509.load_pem_x509_certificate(files.server_certificate.read_bytes())
    if certificate.not_valid_after_utc - RENEW_BEFORE < now:
        return True
    covered = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    have = {str(v) for v in covered.get_values_for_type(x509.IPAddress)} | set(
        covered.get_values_for_type(x509.DNSName))
    return not set(names) <= have
