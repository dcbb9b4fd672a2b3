"""SCRAM-SHA-256 server mechanism (RFC 5802, RFC 7677), sans-IO."""

from __future__ import annotations

import base64

import pytest

from postroom.auth.passwords import DEFAULT_ITERATIONS, scram_secrets
from postroom.auth.sasl import Authenticated, Challenge, Failed, NeedSecrets, ScramSha256
from tests.auth.scram_client import ScramClient

# RFC 7677 §3
CLIENT_NONCE = "rOprNGfwEbeRWgbNEkqO"
SERVER_NONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
CLIENT_FIRST = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
SERVER_FIRST = (
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
CLIENT_FINAL = (
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

KEY = b"fake-salt-key"


@pytest.fixture(scope="module")
def pencil():
    return scram_secrets("pencil", salt=SALT, iterations=4096)


def rfc_mechanism() -> ScramSha256:
    return ScramSha256(KEY, nonce=SERVER_NONCE)


def test_rfc_7677_vector(pencil) -> None:
    mech = rfc_mechanism()
    assert mech.step(CLIENT_FIRST) == NeedSecrets("user")
    assert mech.secrets(pencil) == Challenge(SERVER_FIRST)
    assert mech.step(CLIENT_FINAL) == Challenge(SERVER_FINAL)
    assert mech.step(b"") == Authenticated("user")


def test_test_client_reproduces_rfc_7677() -> None:
    client = ScramClient("user", "pencil", nonce=CLIENT_NONCE)
    assert client.first() == CLIENT_FIRST
    assert client.final(SERVER_FIRST) == CLIENT_FINAL
    assert client.verify(SERVER_FINAL)


def run(mech: ScramSha256, client: ScramClient, secrets) -> tuple[list, object]:
    """Drive a full exchange; returns (the server's challenges, the final step)."""
    challenges = []
    step = mech.step(None)
    assert step == Challenge(b"")
    step = mech.step(client.first())
    assert isinstance(step, NeedSecrets)
    step = mech.secrets(secrets)
    assert isinstance(step, Challenge)
    challenges.append(step.data)
    step = mech.step(client.final(step.data))
    if not isinstance(step, Challenge):
        return challenges, step
    challenges.append(step.data)
    assert client.verify(step.data)
    return challenges, mech.step(b"")


@pytest.mark.parametrize("flag", ["n", "y"])
def test_full_exchange(flag: str, pencil) -> None:
    _, final = run(ScramSha256(KEY), ScramClient("user", "pencil", cbind_flag=flag), pencil)
    assert final == Authenticated("user")


def test_escaped_username_and_authzid(pencil) -> None:
    name = "we=ird,user@example.org"
    client = ScramClient(name, "pencil", authzid=name.upper())
    mech = ScramSha256(KEY)
    mech.step(None)
    assert mech.step(client.first()) == NeedSecrets(name)
    _, final = run(ScramSha256(KEY), client, pencil)
    assert final == Authenticated(name)


def test_wrong_password(pencil) -> None:
    _, final = run(ScramSha256(KEY), ScramClient("user", "pencil!"), pencil)
    assert final == Failed("invalid credentials", "user")


def test_unknown_user_is_indistinguishable(pencil) -> None:
    real = scram_secrets("pencil")  # what an account created today stores
    known, known_final = run(ScramSha256(KEY), ScramClient("user", "nope"), real)
    unknown, unknown_final = run(ScramSha256(KEY), ScramClient("ghost", "nope"), None)
    assert unknown_final == Failed("invalid credentials", "ghost")
    assert known_final == Failed("invalid credentials", "user")

    def shape(server_first: bytes) -> tuple:
        attrs = dict(a.split("=", 1) for a in server_first.decode().split(","))
        return len(attrs["r"]), len(base64.b64decode(attrs["s"])), attrs["i"]

    assert shape(known[0]) == shape(unknown[0]) == (shape(known[0])[0], 16, str(DEFAULT_ITERATIONS))
    # The fake salt is stable per user name, like a real one, and differs between names.
    again, _ = run(ScramSha256(KEY), ScramClient("Ghost", "x"), None)
    other, _ = run(ScramSha256(KEY), ScramClient("phantom", "x"), None)

    def salt(server_first: bytes) -> str:
        return server_first.decode().split(",")[1]

    assert salt(again[0]) == salt(unknown[0]) != salt(other[0])


def test_server_nonce_is_fresh() -> None:
    firsts = set()
    for _ in range(2):
        mech = ScramSha256(KEY)
        mech.step(CLIENT_FIRST)
        firsts.add(mech.secrets(None))
    assert len(firsts) == 2


@pytest.mark.parametrize(
    "client_first",
    [
        b"p=tls-unique,,n=user,r=abc",  # RFC 5802 §6: channel binding not offered
        b"x,,n=user,r=abc",
        b"n,b=x,n=user,r=abc",
        b"n,,m=ext,n=user,r=abc",  # RFC 5802 §5.1: unknown mandatory extension
        b"n,,n=user",
        b"n,,r=abc,n=user",
        b"n,,n=,r=abc",
        b"n,,n=us=er,r=abc",  # "=" must be =2C or =3D
        b"n,,n=user,r=",
        b"n,,n=user,r=a\x7fb",
        b"n,,n=user,r=abc,junk",
        b"n,a=other,n=user,r=abc",  # no impersonation
        b"n,a=,n=user,r=abc",
        b"n,,n=user,r=" + b"a" * 300,
        b"n,,n=\xff,r=abc",
        b"n,,n=user\0,r=abc",
        b"",
    ],
)
def test_malformed_client_first(client_first: bytes) -> None:
    assert isinstance(ScramSha256(KEY).step(client_first), Failed)


def test_extensions_in_client_first_are_ignored() -> None:
    assert ScramSha256(KEY).step(b"n,,n=user,r=abc,x=ext") == NeedSecrets("user")


FULL_NONCE = CLIENT_NONCE + SERVER_NONCE
PROOF = "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="


@pytest.mark.parametrize(
    "client_final",
    [
        f"c=eSws,r={FULL_NONCE},{PROOF}",  # c= says "y,," but the header was "n,,"
        f"c=biws,r={CLIENT_NONCE},{PROOF}",  # nonce must carry the server part
        f"c=biws,r={FULL_NONCE}x,{PROOF}",
        f"c=biws,r={FULL_NONCE}",
        f"r={FULL_NONCE},c=biws,{PROOF}",
        f"c=biws,{PROOF},r={FULL_NONCE}",
        f"c=biws,r={FULL_NONCE},p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ",
        f"c=biws,r={FULL_NONCE},p=AAAA",
        f"c=biws,r={FULL_NONCE},p=!!!!",
        f"c=b!ws,r={FULL_NONCE},{PROOF}",
        f"c=biws,r={FULL_NONCE},junk,{PROOF}",
        "",
    ],
)
def test_malformed_client_final(client_final: str, pencil) -> None:
    mech = rfc_mechanism()
    mech.step(CLIENT_FIRST)
    mech.secrets(pencil)
    step = mech.step(client_final.encode())
    assert step == Failed(step.reason, "user")


def test_data_after_server_final(pencil) -> None:
    mech = rfc_mechanism()
    mech.step(CLIENT_FIRST)
    mech.secrets(pencil)
    mech.step(CLIENT_FINAL)
    assert isinstance(mech.step(b"v=whatever"), Failed)


def test_steps_out_of_order(pencil) -> None:
    mech = rfc_mechanism()
    assert isinstance(mech.secrets(pencil), Failed)  # before client-first
    mech = rfc_mechanism()
    mech.step(CLIENT_FIRST)
    assert isinstance(mech.step(CLIENT_FINAL), Failed)  # before the secrets were supplied
    mech = rfc_mechanism()
    mech.step(CLIENT_FIRST)
    mech.secrets(pencil)
    assert isinstance(mech.secrets(pencil), Failed)  # twice
