"""SASLprep, RFC 4013 §3 examples and the stringprep steps."""

from __future__ import annotations

import pytest

from postroom.auth.saslprep import SASLprepError, saslprep


@pytest.mark.parametrize(
    ("given", "prepared"),
    [
        ("I\u00adX", "IX"),  # RFC 4013 §3 #1: SOFT HYPHEN mapped to nothing
        ("user", "user"),  # #2: no transformation
        ("USER", "USER"),  # #3: case preserved
        ("\u00aa", "a"),  # #4: NFKC
        ("\u2168", "IX"),  # #5: NFKC
        ("pass\u00a0word", "pass word"),  # §2.1: non-ASCII space -> SPACE
        ("e\u0301", "\u00e9"),  # decomposed accent composed
        ("\u05d0\u05d1", "\u05d0\u05d1"),  # all right-to-left is fine
    ],
)
def test_prepares(given: str, prepared: str) -> None:
    assert saslprep(given) == prepared


@pytest.mark.parametrize(
    "given",
    [
        "\u0007",  # RFC 4013 §3 #6: prohibited (ASCII control)
        "\u0627\u0031",  # #7: bidi, R/AL must start and end the string
        "a\u05d0",  # bidi: mixes L and R
        "tab\there",  # C.2.1
        "\ue000",  # C.3 private use
        "\ud800",  # C.5 surrogate
        "\ufffd",  # C.6 inappropriate for plain text
    ],
)
def test_refuses(given: str) -> None:
    with pytest.raises(SASLprepError):
        saslprep(given)


def test_unassigned_only_in_queries() -> None:
    # U+1F600 did not exist in Unicode 3.2: allowed in a query, refused as a stored string.
    assert saslprep("pw\U0001f600") == "pw\U0001f600"
    with pytest.raises(SASLprepError):
        saslprep("pw\U0001f600", allow_unassigned=False)
