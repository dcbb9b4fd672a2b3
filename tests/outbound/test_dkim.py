"""DKIM keys on disk and signatures, verified with dkimpy against the published records."""

from __future__ import annotations

import os

import dkim
import pytest

from postroom.outbound import dkim as keys
from postroom.outbound.submit import signing_domain
from tests.outbound.util import MESSAGE


def _dns_for(*ks: keys.DkimKey):
    records = {f"{k.dns_name}.".encode(): k.dns_value().encode() for k in ks}
    return lambda name, timeout=5: records.get(name)


def test_generate_modes_and_activation(tmp_path):
    first = keys.generate(tmp_path, "Example.TEST", selector="s1")
    assert (first.domain, first.selector, first.algorithm, first.active) == (
        "example.test",
        "s1",
        "rsa",
        True,
    )
    assert oct(os.stat(first.path).st_mode & 0o777) == "0o600"
    assert oct(os.stat(first.path.parent).st_mode & 0o777) == "0o700"
    assert oct(os.stat(tmp_path / "dkim").st_mode & 0o777) == "0o700"
    second = keys.generate(tmp_path, "example.test", selector="s2")
    assert not second.active  # a rotation waits for its DNS record
    ed = keys.generate(tmp_path, "example.test", algorithm="ed25519")
    assert ed.active and ed.selector.endswith("e")
    keys.activate(tmp_path, "example.test", "s2")
    active = {k.selector for k in keys.list_keys(tmp_path, "example.test") if k.active}
    assert active == {"s2", ed.selector}
    assert first.dns_value().startswith("v=DKIM1; k=rsa; p=MII")
    assert ed.dns_value().startswith("v=DKIM1; k=ed25519; p=")


@pytest.mark.parametrize(
    "domain, selector",
    [
        ("../etc", None),
        ("example", None),
        ("a/b.test", None),
        ("ok.test", "bad/sel"),
        ("ok.test", "x y"),
    ],
)
def test_unsafe_names_are_refused(tmp_path, domain, selector):
    with pytest.raises(keys.DkimError):
        keys.generate(tmp_path, domain, selector=selector)


def test_duplicate_selector_and_unknown_key(tmp_path):
    keys.generate(tmp_path, "example.test", selector="s1")
    with pytest.raises(keys.DkimError, match="already"):
        keys.generate(tmp_path, "example.test", selector="s1")
    with pytest.raises(keys.DkimError, match="no key"):
        keys.activate(tmp_path, "example.test", "nope")


def test_ensure_key_only_once(tmp_path):
    assert keys.ensure_key(tmp_path, "example.test") is not None
    assert keys.ensure_key(tmp_path, "example.test") is None


def test_signatures_verify_and_survive_relaxed_changes(tmp_path):
    rsa = keys.generate(tmp_path, "example.test")
    ed = keys.generate(tmp_path, "example.test", algorithm="ed25519")
    signer = keys.Signer(tmp_path)
    signed = signer.sign(MESSAGE, "example.test")
    lookup = _dns_for(rsa, ed)
    assert dkim.verify(signed, dnsfunc=lookup)
    assert dkim.DKIM(signed).verify(idx=1, dnsfunc=lookup)
    # relaxed/relaxed: header case and whitespace changes in transit do not break it
    mangled = signed.replace(b"Subject: outbound test", b"SUBJECT:   outbound   test")
    assert dkim.verify(mangled, dnsfunc=lookup)
    # a second From added in transit breaks it (From is oversigned)
    assert not dkim.verify(b"From: mallory@evil.test\r\n" + signed, dnsfunc=lookup)
    assert not dkim.verify(signed.replace(b"Hello Bob", b"Hello Eve"), dnsfunc=lookup)


def test_no_key_no_signature_and_key_reload(tmp_path):
    signer = keys.Signer(tmp_path)
    assert signer.sign(MESSAGE, "example.test") == MESSAGE
    assert not signer.has_key("example.test")
    keys.generate(tmp_path, "example.test")
    assert signer.has_key("example.test")


def test_signing_domain_prefers_from(tmp_path):
    has = {"example.test", "other.test"}.__contains__
    assert signing_domain(MESSAGE, "bounce@other.test", has) == "example.test"
    no_from = MESSAGE.replace(b"From: Alice <alice@example.test>\r\n", b"")
    assert signing_domain(no_from, "bounce@other.test", has) == "other.test"
    assert signing_domain(no_from, "x@third.test", has) is None
