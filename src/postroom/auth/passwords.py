"""Password storage: argon2id for plaintext logins, SCRAM-SHA-256 secrets for SCRAM.

Both forms are derived from the SASLprep'd password (RFC 4013), so PLAIN, LOGIN, IMAP LOGIN,
POP3 PASS and SCRAM accept exactly the same passwords.  A password SASLprep prohibits (control
characters, for instance) is refused when it is set, because SCRAM could never carry it.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from postroom.auth.saslprep import SASLprepError, saslprep
from postroom.store.base import ScramSecrets

# argon2-cffi's defaults are RFC 9106 §4's second recommended option (t=3, m=64 MiB, p=4):
# about 50 ms per verification on one core, which the Authenticator runs off the event loop.
_hasher = PasswordHasher()

# RFC 7677 §4 asks for at least 4096, and 4096 is also the most that many deployed clients
# accept: Cyrus SASL (mbsync, mutt, many Linux clients) refuses counts over 10,000 with
# "iteration-count is too big".  Dovecot uses 4096 for the same reason.
DEFAULT_ITERATIONS = 4096
MIN_ITERATIONS = 4096
SALT_BYTES = 16


def prepare_password(password: str) -> str:
    """SASLprep the password (RFC 4013); raises ValueError when it cannot be prepared."""
    return saslprep(password)


def hash_password(password: str) -> str:
    """The argon2id encoded hash of the prepared password (ValueError if unpreparable)."""
    return _hasher.hash(prepare_password(password))


def verify_password(password_hash: str, password: str) -> bool:
    """True when ``password`` matches; a malformed hash or password is simply False."""
    try:
        return _hasher.verify(password_hash, prepare_password(password))
    except (VerificationError, InvalidHashError, SASLprepError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's defaults."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


def salted_password(password: str, salt: bytes, iterations: int) -> bytes:
    """RFC 5802 §3: SaltedPassword := Hi(Normalize(password), salt, i), Hi being PBKDF2."""
    return hashlib.pbkdf2_hmac("sha256", prepare_password(password).encode(), salt, iterations)


def scram_secrets(
    password: str, *, salt: bytes | None = None, iterations: int = DEFAULT_ITERATIONS
) -> ScramSecrets:
    """The SCRAM-SHA-256 server secrets (RFC 5802 §3, RFC 7677) for ``password``.

    ``salt`` (16 random bytes by default) is a parameter so tests can reproduce RFC vectors.
    """
    if iterations < MIN_ITERATIONS:
        raise ValueError(f"SCRAM iterations must be at least {MIN_ITERATIONS} (RFC 7677 §4)")
    if salt is None:
        salt = os.urandom(SALT_BYTES)
    salted = salted_password(password, salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    return ScramSecrets(
        salt=salt,
        iterations=iterations,
        stored_key=hashlib.sha256(client_key).digest(),
        server_key=hmac.digest(salted, b"Server Key", "sha256"),
    )
