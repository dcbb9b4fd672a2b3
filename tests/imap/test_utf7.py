from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postroom.imap import utf7


def test_rfc3501_example():
    # RFC 3501 §5.1.3
    name = "~peter/mail/\u53f0\u5317/\u65e5\u672c\u8a9e"
    assert utf7.encode(name) == "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
    assert utf7.decode("~peter/mail/&U,BTFw-/&ZeVnLIqe-") == name
    assert utf7.encode("A&B") == "A&-B"
    assert utf7.decode("A&-B") == "A&B"


@pytest.mark.parametrize("bad", ["&", "&U,BTFw", "&AGE-", "\u00e9", "&*-"])
def test_invalid(bad):
    with pytest.raises(utf7.Utf7Error):
        utf7.decode(bad)


@given(st.text())
def test_round_trip(text):
    assert utf7.decode(utf7.encode(text)) == text
