"""A client-side SCRAM-SHA-256 (RFC 5802 §3, RFC 7677), written from the RFC independently of
the server code, to run real exchanges against it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from postroom.auth.saslprep import saslprep


def escape(name: str) -> str:
    """RFC 5802 §5.1 saslname: "," as "=2C" and "=" as "=3D"."""
    return name.replace("=", "=3D").replace(",", "=2C")


class ScramClient:
    def __init__(
        self,
        username: str,
        password: str,
        *,
        nonce: str | None = None,
        authzid: str = "",
        cbind_flag: str = "n",
    ) -> None:
        self.password = password
        self.nonce = nonce or base64.b64encode(os.urandom(18)).decode()
        authz = f"a={escape(authzid)}" if authzid else ""
        self.gs2_header = f"{cbind_flag},{authz},"
        self.first_bare = f"n={escape(username)},r={self.nonce}"
        self.server_signature = b""

    def first(self) -> bytes:
        return (self.gs2_header + self.first_bare).encode()

    def final(self, server_first: bytes) -> bytes:
        text = server_first.decode()
        attrs = dict(item.split("=", 1) for item in text.split(","))
        assert attrs["r"].startswith(self.nonce) and len(attrs["r"]) > len(self.nonce)
        salt = base64.b64decode(attrs["s"])
        iterations = int(attrs["i"])
        salted = hashlib.pbkdf2_hmac("sha256", saslprep(self.password).encode(), salt, iterations)
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        stored_key = hashlib.sha256(client_key).digest()
        cbind = base64.b64encode(self.gs2_header.encode()).decode()
        without_proof = f"c={cbind},r={attrs['r']}"
        auth_message = f"{self.first_bare},{text},{without_proof}".encode()
        signature = hmac.digest(stored_key, auth_message, "sha256")
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        server_key = hmac.digest(salted, b"Server Key", "sha256")
        self.server_signature = hmac.digest(server_key, auth_message, "sha256")
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify(self, server_final: bytes) -> bool:
        """RFC 5802 §3: the client authenticates the server by its ServerSignature."""
        return server_final == b"v=" + base64.b64encode(self.server_signature)
