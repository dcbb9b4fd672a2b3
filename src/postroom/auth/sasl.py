"""Server side of the SASL mechanisms PLAIN, LOGIN and SCRAM-SHA-256, sans-IO.

A mechanism is fed the decoded client responses one by one and answers with a step: send a
``Challenge``, or ask its driver (the Authenticator) to ``VerifyPassword`` or to look up the
SCRAM secrets (``NeedSecrets``, answered with ``Mechanism.secrets``), or report the end
(``Authenticated`` / ``Failed``).  No store, no socket, no clock: every input is hostile, and
any bytes at any step yield a step, never an exception.
"""

from __future__ import annotations

import abc
import base64
import binascii
import hashlib
import hmac
import os
import re
from dataclasses import dataclass

from postroom.auth.passwords import DEFAULT_ITERATIONS, SALT_BYTES
from postroom.store.base import ScramSecrets

# Longest decoded client response a mechanism accepts: generous for a 255-octet authcid,
# authzid and password (RFC 4616 §2) and for any SCRAM message a real client sends.
MAX_RESPONSE = 4096


@dataclass(frozen=True, slots=True)
class Challenge:
    """Send ``data`` to the client (the protocol base64-encodes it) and step with the reply."""

    data: bytes


@dataclass(frozen=True, slots=True)
class VerifyPassword:
    """Check ``password`` for ``username``; the exchange ends with the result."""

    username: str
    password: str


@dataclass(frozen=True, slots=True)
class NeedSecrets:
    """Look up ``username``'s SCRAM secrets and pass them (or None) to ``Mechanism.secrets``."""

    username: str


@dataclass(frozen=True, slots=True)
class Authenticated:
    username: str


@dataclass(frozen=True, slots=True)
class Failed:
    """The exchange is over without success; ``username`` is set when one was claimed."""

    reason: str
    username: str | None = None


Step = Challenge | VerifyPassword | NeedSecrets | Authenticated | Failed


class Mechanism(abc.ABC):
    """Base of the server mechanisms: one instance per authentication exchange."""

    name = ""

    def __init__(self) -> None:
        self.username: str | None = None  # the claimed authentication identity, once known
        self._started = False
        self._finished = False

    def step(self, response: bytes | None) -> Step:
        """Feed the next decoded client response (None: the client sent no initial response)."""
        if self._finished:
            return Failed("exchange already finished", self.username)
        first = not self._started
        self._started = True
        if response is None and not first:
            return self._fail("missing response")
        if response is not None and len(response) > MAX_RESPONSE:
            return self._fail("response too long")
        result = self._step(response)
        if isinstance(result, VerifyPassword | Authenticated | Failed):
            self._finished = True
        return result

    def secrets(self, secrets: ScramSecrets | None) -> Step:
        """Answer a NeedSecrets step.  Only SCRAM asks; anyone else calling it fails."""
        return self._fail("secrets were not asked for")

    @abc.abstractmethod
    def _step(self, response: bytes | None) -> Step:
        """The mechanism's own exchange, after the shared checks of ``step``."""

    def _fail(self, reason: str) -> Failed:
        self._finished = True
        return Failed(reason, self.username)


def _utf8(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


class Plain(Mechanism):
    """RFC 4616: one message ``[authzid] NUL authcid NUL passwd``."""

    name = "PLAIN"

    def _step(self, response: bytes | None) -> Step:
        if response is None:
            # RFC 4422 §5: no initial response, so send an empty challenge to get one.
            return Challenge(b"")
        parts = response.split(b"\0")
        if len(parts) != 3:
            return self._fail("malformed PLAIN message")
        texts = [_utf8(p) for p in parts]
        if None in texts:
            return self._fail("PLAIN message is not UTF-8")
        authzid, authcid, password = texts
        self.username = authcid or None
        # RFC 4616 §2: authcid and passwd are 1*SAFE.
        if not authcid or not password:
            return self._fail("empty PLAIN authcid or password")
        # RFC 4616 §2: acting as another identity needs an authorization policy; postroom
        # has none, so only the empty authzid or the authcid itself is accepted.
        if authzid and authzid.lower() != authcid.lower():
            return self._fail("authorization identity differs from authentication identity")
        return VerifyPassword(authcid, password)


class Login(Mechanism):
    """draft-murchison-sasl-login: "Username:" then "Password:" challenges.

    An initial response carries the username (Outlook sends ``AUTH LOGIN <user>``).
    """

    name = "LOGIN"

    def _step(self, response: bytes | None) -> Step:
        if response is None:
            return Challenge(b"Username:")
        text = _utf8(response)
        if text is None or "\0" in text:
            return self._fail("LOGIN response is not valid text")
        if self.username is None:
            if not text:
                return self._fail("empty LOGIN username")
            self.username = text
            return Challenge(b"Password:")
        if not text:
            return self._fail("empty LOGIN password")
        return VerifyPassword(self.username, text)


# RFC 5802 §7: printable = %x21-2B / %x2D-7E (no comma); value = any UTF-8 but "," and NUL.
_PRINTABLE = re.compile(r"[\x21-\x2b\x2d-\x7e]+")
_ATTR = re.compile(r"[A-Za-z]=")
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
_MAX_NONCE = 256
_SERVER_NONCE_BYTES = 24


def _saslname(value: str) -> str | None:
    """RFC 5802 §5.1 saslname: "=2C" is ",", "=3D" is "=", any other "=" is an error."""
    if not value or "," in value:
        return None
    pieces = value.split("=")
    out = [pieces[0]]
    for piece in pieces[1:]:
        if piece[:2] == "2C":
            out.append("," + piece[2:])
        elif piece[:2] == "3D":
            out.append("=" + piece[2:])
        else:
            return None
    return "".join(out)


def _b64decode(value: str) -> bytes | None:
    if not _BASE64.fullmatch(value):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        return None


class ScramSha256(Mechanism):
    """RFC 5802 with SHA-256 (RFC 7677), without channel binding (no -PLUS variant).

    For an unknown user (or one without SCRAM secrets) the exchange still runs with a salt
    derived from ``fake_key`` and the username, so the server-first message looks the same
    as for a real account and the failure arrives only after the proof (RFC 5802 §9 asks
    for this, so usernames cannot be enumerated).  ``nonce`` fixes the server nonce (tests).
    """

    name = "SCRAM-SHA-256"

    def __init__(self, fake_key: bytes, *, nonce: str | None = None) -> None:
        super().__init__()
        self._fake_key = fake_key
        self._server_nonce = nonce or base64.b64encode(os.urandom(_SERVER_NONCE_BYTES)).decode()
        self._gs2_header = ""
        self._client_first_bare = ""
        self._server_first = ""
        self._nonce = ""
        self._secrets: ScramSecrets | None = None
        self._state = "client-first"

    def _step(self, response: bytes | None) -> Step:
        if response is None:
            return Challenge(b"")
        text = _utf8(response)
        if text is None or "\0" in text:
            return self._fail("SCRAM message is not valid text")
        if self._state == "client-first":
            return self._client_first(text)
        if self._state == "client-final":
            return self._client_final(text)
        if self._state == "server-final-sent":
            # The client acknowledges the server-final message with an empty response.
            if text:
                return self._fail("unexpected data after SCRAM server-final")
            return Authenticated(self.username or "")
        return self._fail("SCRAM secrets were not supplied")

    def _client_first(self, text: str) -> Step:
        # RFC 5802 §7: gs2-header = gs2-cbind-flag "," [authzid] ","
        fields = text.split(",")
        if len(fields) < 4:
            return self._fail("malformed SCRAM client-first message")
        cbind, authzid = fields[0], fields[1]
        if cbind.startswith("p="):
            # RFC 5802 §6: channel binding was not offered (no SCRAM-SHA-256-PLUS).
            return self._fail("SCRAM channel binding is not supported")
        if cbind not in ("n", "y"):
            return self._fail("malformed SCRAM gs2 header")
        authz = None
        if authzid:
            if not authzid.startswith("a="):
                return self._fail("malformed SCRAM authzid")
            authz = _saslname(authzid[2:])
            if authz is None:
                return self._fail("malformed SCRAM authzid")
        bare = fields[2:]
        # RFC 5802 §5.1: "m" is reserved for mandatory extensions; none is understood.
        if bare[0].startswith("m="):
            return self._fail("unsupported SCRAM mandatory extension")
        if not bare[0].startswith("n="):
            return self._fail("SCRAM client-first lacks the username")
        username = _saslname(bare[0][2:])
        if username is None:
            return self._fail("malformed SCRAM username")
        self.username = username
        if not bare[1].startswith("r=") or not _PRINTABLE.fullmatch(bare[1][2:]):
            return self._fail("malformed SCRAM client nonce")
        if len(bare[1]) - 2 > _MAX_NONCE:
            return self._fail("SCRAM client nonce too long")
        if not all(_ATTR.match(ext) for ext in bare[2:]):
            return self._fail("malformed SCRAM extension")
        if authz is not None and authz.lower() != username.lower():
            return self._fail("authorization identity differs from authentication identity")
        self._gs2_header = f"{cbind},{authzid},"
        self._client_first_bare = ",".join(bare)
        self._nonce = bare[1][2:] + self._server_nonce
        self._state = "secrets"
        return NeedSecrets(username)

    def secrets(self, secrets: ScramSecrets | None) -> Step:
        if self._finished or self._state != "secrets":
            return self._fail("secrets were not asked for")
        if secrets is None:
            secrets = self._fake_secrets()
        self._secrets = secrets
        salt = base64.b64encode(secrets.salt).decode()
        self._server_first = f"r={self._nonce},s={salt},i={secrets.iterations}"
        self._state = "client-final"
        return Challenge(self._server_first.encode())

    def _fake_secrets(self) -> ScramSecrets:
        """Secrets no proof can match, with a salt stable for a given username."""
        digest = hmac.digest(self._fake_key, (self.username or "").lower().encode(), "sha256")
        return ScramSecrets(
            salt=digest[:SALT_BYTES],
            iterations=DEFAULT_ITERATIONS,
            stored_key=os.urandom(32),
            server_key=os.urandom(32),
        )

    def _client_final(self, text: str) -> Step:
        # RFC 5802 §7: client-final = "c=" base64 "," "r=" nonce ["," extensions] "," "p=" proof
        fields = text.split(",")
        if len(fields) < 3 or not fields[-1].startswith("p="):
            return self._fail("malformed SCRAM client-final message")
        if not fields[0].startswith("c="):
            return self._fail("SCRAM client-final lacks channel binding data")
        cbind = _b64decode(fields[0][2:])
        if cbind != self._gs2_header.encode():
            # RFC 5802 §5.1: c= must repeat the gs2 header exactly (no cbind-data here).
            return self._fail("SCRAM channel binding data does not match")
        if fields[1] != "r=" + self._nonce:
            return self._fail("SCRAM nonce mismatch")
        if not all(_ATTR.match(ext) for ext in fields[2:-1]):
            return self._fail("malformed SCRAM extension")
        proof = _b64decode(fields[-1][2:])
        if proof is None or len(proof) != hashlib.sha256().digest_size:
            return self._fail("malformed SCRAM proof")
        assert self._secrets is not None
        without_proof = text[: text.rindex(",")]
        auth_message = f"{self._client_first_bare},{self._server_first},{without_proof}".encode()
        # RFC 5802 §3: ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage);
        # the proof is right when H(ClientKey) == StoredKey.
        signature = hmac.digest(self._secrets.stored_key, auth_message, "sha256")
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        if not hmac.compare_digest(hashlib.sha256(client_key).digest(), self._secrets.stored_key):
            return self._fail("invalid credentials")
        server_signature = hmac.digest(self._secrets.server_key, auth_message, "sha256")
        self._state = "server-final-sent"
        return Challenge(b"v=" + base64.b64encode(server_signature))


MECHANISMS = ("PLAIN", "LOGIN", "SCRAM-SHA-256")
