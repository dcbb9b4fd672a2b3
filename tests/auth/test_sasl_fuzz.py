"""Property: any bytes fed to any mechanism at any step yield a step, never an exception."""

from __future__ import annotations

import base64

from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.auth.passwords import scram_secrets
from postroom.auth.sasl import (
    Authenticated,
    Challenge,
    Failed,
    Login,
    NeedSecrets,
    Plain,
    ScramSha256,
    VerifyPassword,
)
from tests.auth.scram_client import ScramClient

SECRETS = scram_secrets("pencil", salt=b"0123456789abcdef", iterations=4096)
STEPS = (Challenge, VerifyPassword, NeedSecrets, Authenticated, Failed)

responses = st.lists(st.none() | st.binary(max_size=300), min_size=1, max_size=6)


def drive(mech, inputs, secrets_choices) -> None:
    for i, response in enumerate(inputs):
        step = mech.step(response)
        assert isinstance(step, STEPS)
        if isinstance(step, NeedSecrets):
            step = mech.secrets(secrets_choices[i % len(secrets_choices)])
            assert isinstance(step, STEPS)
        if isinstance(step, Failed | VerifyPassword | Authenticated):
            assert isinstance(mech.step(response), Failed)  # finished stays finished


@settings(max_examples=300, deadline=None)
@given(responses)
def test_plain_never_raises(inputs) -> None:
    drive(Plain(), inputs, [None])


@settings(max_examples=300, deadline=None)
@given(responses)
def test_login_never_raises(inputs) -> None:
    drive(Login(), inputs, [None])


@settings(max_examples=300, deadline=None)
@given(responses, st.lists(st.sampled_from([None, SECRETS]), min_size=1, max_size=3))
def test_scram_never_raises(inputs, secrets_choices) -> None:
    drive(ScramSha256(b"k"), inputs, secrets_choices)


# Near-valid SCRAM messages reach the deeper parsing paths that random bytes rarely do.
_valid_first = ScramClient("user", "pencil", nonce="abc").first()


def _mutate(data: bytes, position: int, replacement: bytes) -> bytes:
    position %= len(data) + 1
    return data[:position] + replacement + data[position + 1 :]


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, 200),
    st.sampled_from([b"", b",", b"=", b"=2C", b"\0", b"\xff", b"a=", b"p=", b"m=x,", b"c=biws"]),
    st.booleans(),
    st.sampled_from([None, SECRETS]),
)
def test_scram_mutated_messages_never_raise(position, replacement, in_final, secrets) -> None:
    mech = ScramSha256(b"k", nonce="srv")
    client = ScramClient("user", "pencil", nonce="abc")
    first = _valid_first if in_final else _mutate(_valid_first, position, replacement)
    step = mech.step(first)
    assert isinstance(step, STEPS)
    if not isinstance(step, NeedSecrets):
        return
    step = mech.secrets(secrets)
    assert isinstance(step, Challenge)
    if in_final:
        final = _mutate(client.final(step.data), position, replacement)
    else:  # the nonce may have changed with the mutation: a valid-looking, wrong final
        final = b"c=biws,r=abcsrv,p=" + base64.b64encode(bytes(32))
    step = mech.step(final)
    assert isinstance(step, Challenge | Failed)
    if isinstance(step, Challenge):
        assert secrets is SECRETS
        assert mech.step(b"") == Authenticated("user")


def test_base64_lookalikes_in_proof() -> None:
    for proof in ("====", "A===", base64.b64encode(b"x" * 33).decode(), "AAAA" * 100):
        mech = ScramSha256(b"k", nonce="srv")
        mech.step(b"n,,n=user,r=abc")
        mech.secrets(SECRETS)
        step = mech.step(f"c=biws,r=abcsrv,p={proof}".encode())
        assert isinstance(step, Failed)
