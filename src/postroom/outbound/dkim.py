"""DKIM keys and signing (RFC 6376; Ed25519 per RFC 8463), with dkimpy.

Keys live in ``data_dir/dkim/<domain>/<selector>.<algorithm>.pem`` (mode 0600, folders 0700).
The selectors in use for a domain are listed in ``data_dir/dkim/<domain>/active``: the first key
of an algorithm becomes active when generated; a later one (a rotation) only when the
administrator says so, after publishing its DNS record, so no mail is signed with a key
receivers cannot find yet.  Each active key adds one signature (RSA and, optionally, Ed25519).
"""

from __future__ import annotations

import base64
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import dkim as dkimpy
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from postroom.net.tls import write_private

ALGORITHMS = ("rsa", "ed25519")
SIGNATURE_ALGORITHM = {"rsa": b"rsa-sha256", "ed25519": b"ed25519-sha256"}
RSA_BITS = 2048

# The header fields worth protecting (RFC 6376 §5.4.1): what a reader sees and what threads
# or routes replies.  Each is signed as often as it occurs; From once more ("oversigning",
# RFC 6376 §8.15), so a second From cannot be added without breaking the signature.
SIGNED_FIELDS = (
    "from", "sender", "reply-to", "subject", "date", "message-id", "to", "cc",
    "in-reply-to", "references", "mime-version", "content-type",
    "content-transfer-encoding", "content-id", "content-description",
    "resent-date", "resent-from", "resent-sender", "resent-to", "resent-cc",
    "resent-message-id", "list-id", "list-help", "list-unsubscribe",
    "list-unsubscribe-post", "list-subscribe", "list-post", "list-owner", "list-archive",
)  # fmt: skip
OVERSIGNED = ("from",)

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})+")
_SELECTOR = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")


class DkimError(ValueError):
    """A bad domain or selector, a duplicate or missing key."""


@dataclass(frozen=True, slots=True)
class DkimKey:
    domain: str
    selector: str
    algorithm: str
    path: Path
    active: bool

    @property
    def dns_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"

    def dns_value(self) -> str:
        """The TXT record text (RFC 6376 §3.6.1; RFC 8463 §4.2 for Ed25519)."""
        private = serialization.load_pem_private_key(self.path.read_bytes(), None)
        if isinstance(private, ed25519.Ed25519PrivateKey):
            raw = private.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
            return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}"
        der = private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"


def domain_name(domain: str) -> str:
    """Checked, lower-case, A-label form of a domain: it names a folder and a DNS record."""
    try:
        name = domain.strip().rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise DkimError(f"{domain!r} is not a domain name") from None
    if len(name) > 253 or not _DOMAIN.fullmatch(name):
        raise DkimError(f"{domain!r} is not a domain name")
    return name


def _folder(data_dir: Path, domain: str) -> Path:
    return Path(data_dir) / "dkim" / domain_name(domain)


def _active(folder: Path) -> list[str]:
    try:
        return (folder / "active").read_text("ascii").split()
    except FileNotFoundError:
        return []


def list_keys(data_dir: Path, domain: str | None = None) -> list[DkimKey]:
    """Keys of one domain (or all), each marked active or not."""
    root = Path(data_dir) / "dkim"
    folders = [_folder(data_dir, domain)] if domain else sorted(root.glob("*"))
    keys = []
    for folder in folders:
        if not folder.is_dir():
            continue
        active = _active(folder)
        for path in sorted(folder.glob("*.pem")):
            selector, _, algorithm = path.name.removesuffix(".pem").rpartition(".")
            if algorithm in ALGORITHMS:
                keys.append(DkimKey(folder.name, selector, algorithm, path, selector in active))
    return keys


def generate(
    data_dir: Path, domain: str, selector: str | None = None, algorithm: str = "rsa"
) -> DkimKey:
    """Make a key; it is active when the domain has no active key of that algorithm yet."""
    if algorithm not in ALGORITHMS:
        raise DkimError(f"algorithm {algorithm!r} is not one of {', '.join(ALGORITHMS)}")
    name = domain_name(domain)
    folder = _folder(data_dir, name)
    existing = list_keys(data_dir, name)
    taken = {k.selector for k in existing}
    if selector is None:
        base = time.strftime("%Y%m") + ("r" if algorithm == "rsa" else "e")
        selector, n = base, 1
        while selector in taken:
            n += 1
            selector = f"{base}{n}"
    selector = selector.lower()
    if not _SELECTOR.fullmatch(selector):
        raise DkimError(f"{selector!r} is not a selector (letters, digits, '-', '.')")
    if selector in taken:
        raise DkimError(f"{name} already has a key with selector {selector}")
    private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    if algorithm == "rsa":
        private = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    else:
        private = ed25519.Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder.parent, 0o700)
    path = folder / f"{selector}.{algorithm}.pem"
    write_private(path, pem)
    active = not any(k.active and k.algorithm == algorithm for k in existing)
    if active:
        write_private(folder / "active", "\n".join([*_active(folder), selector]).encode() + b"\n")
    return DkimKey(name, selector, algorithm, path, active)


def activate(data_dir: Path, domain: str, selector: str) -> DkimKey:
    """Sign with this key from now on, instead of the active key of the same algorithm."""
    keys = {k.selector: k for k in list_keys(data_dir, domain)}
    key = keys.get(selector.lower())
    if key is None:
        raise DkimError(f"{domain_name(domain)} has no key with selector {selector}")
    keep = [s for s in _active(key.path.parent) if s in keys and keys[s].algorithm != key.algorithm]
    write_private(key.path.parent / "active", "\n".join([*keep, key.selector]).encode() + b"\n")
    return DkimKey(key.domain, key.selector, key.algorithm, key.path, True)


def ensure_key(data_dir: Path, domain: str) -> DkimKey | None:
    """For ``domain add``: an RSA key when the domain has none; None when it already has one."""
    if any(k.algorithm == "rsa" for k in list_keys(data_dir, domain)):
        return None
    return generate(data_dir, domain)


def header_names(data: bytes) -> list[str]:
    """Lower-case names of the top-level header fields, in order."""
    end = data.find(b"\r\n\r\n")
    head = data if end < 0 else data[: end + 2]
    names = []
    for line in head.split(b"\r\n"):
        if line and line[:1] not in (b" ", b"\t"):
            name, colon, _ = line.partition(b":")
            if colon:
                names.append(name.strip().decode("ascii", "replace").lower())
    return names


def signed_fields(data: bytes) -> list[bytes]:
    """The h= list for a message: present fields as often as they occur, From once more."""
    names = header_names(data)
    out = []
    for field in SIGNED_FIELDS:
        count = names.count(field) + (1 if field in OVERSIGNED else 0)
        out += [field.encode()] * count
    return out


def _signing_key(key: DkimKey) -> bytes:
    pem = key.path.read_bytes()
    if key.algorithm == "rsa":
        return pem
    private = serialization.load_pem_private_key(pem, None)
    assert isinstance(private, ed25519.Ed25519PrivateKey)
    seed = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return base64.b64encode(seed)  # dkimpy's Ed25519 key format


class Signer:
    """Signs with a domain's active keys; re-reads them when the ``active`` file changes."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self._cache: dict[str, tuple[float, list[tuple[DkimKey, bytes]]]] = {}

    def _keys(self, domain: str) -> list[tuple[DkimKey, bytes]]:
        try:
            folder = _folder(self.data_dir, domain)
        except DkimError:
            return []
        try:
            stamp = (folder / "active").stat().st_mtime_ns
        except FileNotFoundError:
            return []
        cached = self._cache.get(folder.name)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        keys = [(k, _signing_key(k)) for k in list_keys(self.data_dir, folder.name) if k.active]
        keys.sort(key=lambda item: ALGORITHMS.index(item[0].algorithm), reverse=True)
        self._cache[folder.name] = (stamp, keys)
        return keys

    def has_key(self, domain: str) -> bool:
        return bool(self._keys(domain))

    def sign(self, data: bytes, domain: str) -> bytes:
        """``data`` with one DKIM-Signature per active key of ``domain`` prepended (unchanged
        when the domain has no key).  Canonicalization relaxed/relaxed (RFC 6376 §3.4)."""
        headers = signed_fields(data)
        signatures = b""
        for key, private in self._keys(domain):
            signatures = (
                dkimpy.sign(
                    data,
                    key.selector.encode(),
                    key.domain.encode(),
                    private,
                    canonicalize=(b"relaxed", b"relaxed"),
                    include_headers=headers,
                    signature_algorithm=SIGNATURE_ALGORITHM[key.algorithm],
                )
                + signatures
            )
        return signatures + data
