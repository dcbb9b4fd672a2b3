"""PLAIN (RFC 4616) and LOGIN (draft-murchison-sasl-login) server mechanisms, sans-IO."""

from __future__ import annotations

import pytest

from postroom.auth.sasl import Challenge, Failed, Login, Plain, VerifyPassword


def test_plain_rfc_4616_example_without_authzid() -> None:
    # RFC 4616 §4: "<NUL>tim<NUL>tanstaaftanstaaf"
    assert Plain().step(b"\0tim\0tanstaaftanstaaf") == VerifyPassword("tim", "tanstaaftanstaaf")


def test_plain_rfc_4616_example_with_other_authzid_is_refused() -> None:
    # RFC 4616 §4: "Ursel<NUL>Kurt<NUL>xipj3plmq" acts as Ursel; postroom has no proxy policy.
    step = Plain().step(b"Ursel\0Kurt\0xipj3plmq")
    assert isinstance(step, Failed) and step.username == "Kurt"


def test_plain_authzid_equal_to_authcid() -> None:
    step = Plain().step(b"Tim@Example.org\0tim@example.org\0pw")
    assert step == VerifyPassword("tim@example.org", "pw")


def test_plain_without_initial_response_gets_empty_challenge() -> None:
    mech = Plain()
    assert mech.step(None) == Challenge(b"")
    assert mech.step(b"\0u\0p") == VerifyPassword("u", "p")


def test_plain_utf8_password() -> None:
    step = Plain().step("\0ü@example.org\0pässwörd".encode())
    assert step == VerifyPassword("ü@example.org", "pässwörd")


@pytest.mark.parametrize(
    "message",
    [
        b"",
        b"tim",
        b"\0tim",
        b"\0tim\0pw\0extra",
        b"\0\0pw",  # empty authcid
        b"\0tim\0",  # empty password
        b"\0t\xffm\0pw",  # not UTF-8
        b"\0tim\0" + b"x" * 5000,  # longer than any real response
    ],
)
def test_plain_malformed(message: bytes) -> None:
    assert isinstance(Plain().step(message), Failed)


def test_plain_is_one_shot() -> None:
    mech = Plain()
    mech.step(b"\0u\0p")
    assert isinstance(mech.step(b"\0u\0p"), Failed)
    assert isinstance(mech.secrets(None), Failed)


def test_login_challenges() -> None:
    mech = Login()
    assert mech.step(None) == Challenge(b"Username:")
    assert mech.step(b"tim@example.org") == Challenge(b"Password:")
    assert mech.step(b"secret") == VerifyPassword("tim@example.org", "secret")
    assert isinstance(mech.step(b"again"), Failed)


def test_login_initial_response_is_the_username() -> None:
    # Outlook: "AUTH LOGIN dGltQGV4YW1wbGUub3Jn"
    mech = Login()
    assert mech.step(b"tim@example.org") == Challenge(b"Password:")
    assert mech.step(b"secret") == VerifyPassword("tim@example.org", "secret")


@pytest.mark.parametrize(
    ("responses", "username"),
    [
        ([b""], None),
        ([b"\xff"], None),
        ([b"tim", b""], "tim"),
        ([b"tim", b"p\0w"], "tim"),
        ([b"tim", None], "tim"),
    ],
)
def test_login_malformed(responses: list[bytes | None], username: str | None) -> None:
    mech = Login()
    steps = [mech.step(r) for r in responses]
    assert steps[-1] == Failed(steps[-1].reason, username)
    assert all(isinstance(s, Challenge) for s in steps[:-1])
