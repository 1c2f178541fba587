"""``serve --tls``'s local CA: made once and kept (clients keep trusting a restarted server), keys private, and a
server certificate that chains to it and names the host it serves."""

from __future__ import annotations

import ipaddress
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from shared.local.tls import SERVER_LIFETIME, ensure_tls_files


def names_of(certificate: x509.Certificate) -> set[str]:
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(i) for i in san.get_values_for_type(x509.IPAddress)} | set(san.get_values_for_type(x509.DNSName))


def test_a_restart_keeps_the_ca_and_the_server_certificate_chains_to_it(tmp_path: Path) -> None:
    first = ensure_tls_files(tmp_path, "127.0.0.1")
    ca_pem, server_pem = first.ca_certificate.read_bytes(), first.server_certificate.read_bytes()
    again = ensure_tls_files(tmp_path, "127.0.0.1")
    assert again.ca_certificate.read_bytes() == ca_pem and again.server_certificate.read_bytes() == server_pem

    ca = x509.load_pem_x509_certificate(ca_pem)
    server = x509.load_pem_x509_certificate(server_pem)
    server.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0
    assert {"127.0.0.1", "localhost", str(ipaddress.ip_address("::1"))} <= names_of(server)
    for key in (tmp_path / "tls" / "ca-key.pem", first.server_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert isinstance(server.public_key(), ec.EllipticCurvePublicKey)


def test_another_host_or_an_ageing_certificate_gets_a_new_one_from_the_same_ca(tmp_path: Path) -> None:
    first = ensure_tls_files(tmp_path, "127.0.0.1")
    ca_pem, server_pem = first.ca_certificate.read_bytes(), first.server_certificate.read_bytes()
    other_host = ensure_tls_files(tmp_path, "10.1.2.3")
    assert other_host.ca_certificate.read_bytes() == ca_pem
    assert "10.1.2.3" in names_of(x509.load_pem_x509_certificate(other_host.server_certificate.read_bytes()))

    later = ensure_tls_files(tmp_path, "10.1.2.3", now=datetime.now(UTC) + SERVER_LIFETIME - timedelta(days=1))
    renewed = x509.load_pem_x509_certificate(later.server_certificate.read_bytes())
    assert later.server_certificate.read_bytes() != server_pem
    assert renewed.not_valid_after_utc > datetime.now(UTC) + SERVER_LIFETIME
    assert first.exports() == [f"export REQUESTS_CA_BUNDLE={first.ca_certificate}",
                               f"export SSL_CERT_FILE={first.ca_certificate}"]
