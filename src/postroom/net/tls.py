"""TLS server contexts: the configured certificate, or a self-signed one made on first start."""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from pathlib import Path

from postroom.config import ConfigError


class TLSManager:
    """Holds the server SSLContext.  ``reload()`` (SIGHUP) loads the certificate into the same
    context object, so listeners that were given it (implicit TLS) use the new certificate for
    new connections, and established connections are untouched."""

    def __init__(self, cert: str | None, key: str | None, data_dir: Path, hostname: str) -> None:
        if cert is None or key is None:
            cert, key = ensure_self_signed(data_dir / "tls", hostname)
        self.cert_path = cert
        self.key_path = key
        self.context = self._build()

    def _build(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
        try:
            ctx.load_cert_chain(self.cert_path, self.key_path)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"tls: cannot load {self.cert_path} / {self.key_path}: {exc}"
            ) from None
        return ctx

    def reload(self) -> None:
        self._build()  # validate first: a bad new certificate leaves the old one serving
        self.context.load_cert_chain(self.cert_path, self.key_path)


def ensure_self_signed(folder: Path, hostname: str) -> tuple[str, str]:
    """Create (once) a self-signed certificate for ``hostname`` and return its paths."""
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    if cert_path.exists() and key_path.exists():
        return str(cert_path), str(key_path)
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    sans: list[x509.GeneralName] = [x509.DNSName(hostname), x509.DNSName("localhost")]
    sans.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_private(key_path, key_bytes)
    write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return str(cert_path), str(key_path)


def write_private(path: Path, data: bytes) -> None:
    """Write a secret durably, readable by its owner only."""
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
