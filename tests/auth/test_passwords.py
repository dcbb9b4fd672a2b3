"""argon2id hashes and SCRAM-SHA-256 secrets."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from postroom.auth.passwords import (
    DEFAULT_ITERATIONS,
    hash_password,
    needs_rehash,
    scram_secrets,
    verify_password,
)


def test_hash_and_verify() -> None:
    hashed = hash_password("pencil")
    assert hashed.startswith("$argon2id$")
    assert verify_password(hashed, "pencil")
    assert not verify_password(hashed, "Pencil")
    assert not verify_password(hashed, "")
    assert not needs_rehash(hashed)
    assert hash_password("pencil") != hashed  # salted


def test_prepared_forms_match() -> None:
    # RFC 4013: the same password typed as U+2168 or "IX", with or without a soft hyphen.
    hashed = hash_password("\u2168-pass\u00a0word")
    assert verify_password(hashed, "I\u00adX-pass word")


def test_malformed_inputs_are_false_not_errors() -> None:
    assert not verify_password("not a hash", "pencil")
    assert not verify_password(hash_password("pencil"), "bell\u0007")
    assert needs_rehash("not a hash")


def test_unpreparable_password_refused() -> None:
    with pytest.raises(ValueError):
        hash_password("bad\u0000pw")
    with pytest.raises(ValueError):
        scram_secrets("bad\tpw")


def test_scram_secrets_rfc_5802_derivation() -> None:
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    secrets = scram_secrets("pencil", salt=salt, iterations=4096)
    salted = hashlib.pbkdf2_hmac("sha256", b"pencil", salt, 4096)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    assert secrets.salt == salt and secrets.iterations == 4096
    assert secrets.stored_key == hashlib.sha256(client_key).digest()
    assert secrets.server_key == hmac.digest(salted, b"Server Key", "sha256")


def test_scram_secrets_defaults() -> None:
    one, two = scram_secrets("pencil"), scram_secrets("pencil")
    assert len(one.salt) == 16 and one.salt != two.salt
    assert one.iterations == DEFAULT_ITERATIONS >= 4096
    assert one.stored_key != two.stored_key


def test_scram_iterations_minimum() -> None:
    # RFC 7677 §4: at least 4096.
    with pytest.raises(ValueError):
        scram_secrets("pencil", iterations=4095)
