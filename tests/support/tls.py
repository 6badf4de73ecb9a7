"""Self-signed certificates for the tests' loopback servers (STARTTLS, HTTPS stand-ins) and app
registrations, so a client that verifies certificates accepts them once it trusts this one
(`SSL_CERT_FILE`, `cafile=`). One builder for every test, so they all get the same extensions."""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID


def self_signed(
    directory: Path,
    *,
    common_name: str = "127.0.0.1",
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = ("127.0.0.1",),
    use_rsa: bool = False,
    stem: str = "self-signed",
) -> tuple[Path, Path]:
    """(certificate, key) PEM files `<stem>.pem`/`<stem>.key` in `directory`, covering the names
    and addresses given; valid from an hour ago for a day. RSA where the consumer signs RS256
    (app registration certificates), EC otherwise (faster to make)."""
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if use_rsa:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
    )
    covered: list[x509.GeneralName] = [x509.DNSName(dns) for dns in dns_names]
    covered += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    if covered:
        builder = builder.add_extension(x509.SubjectAlternativeName(covered), critical=False)
    certificate = builder.sign(key, hashes.SHA256())
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def loopback_certificate(directory: Path) -> tuple[Path, Path]:
    """(certificate, key) PEM files for 127.0.0.1."""
    return self_signed(directory, stem="loopback")


def server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context
