"""SASLprep (RFC 4013): the stringprep profile that makes passwords comparable.

SCRAM hashes ``SaltedPassword = Hi(Normalize(password), ...)`` (RFC 5802 §2.2), so the server
and every client must prepare a password the same way, or a user whose password contains a
non-ASCII space, a soft hyphen or a decomposed accent could never log in.  Built on the stdlib
``stringprep`` tables and the Unicode 3.2 normaliser that stringprep (RFC 3454) requires.
"""

from __future__ import annotations

import stringprep
import unicodedata

_NFKC_3_2 = unicodedata.ucd_3_2_0


class SASLprepError(ValueError):
    """The string contains a character SASLprep prohibits, or breaks the bidi rule."""


# RFC 4013 §2.3: prohibited output (C.1.2 is mapped away in §2.1 but listed for safety).
_PROHIBITED = (
    stringprep.in_table_c12,
    stringprep.in_table_c21_c22,
    stringprep.in_table_c3,
    stringprep.in_table_c4,
    stringprep.in_table_c5,
    stringprep.in_table_c6,
    stringprep.in_table_c7,
    stringprep.in_table_c8,
    stringprep.in_table_c9,
)


def saslprep(text: str, *, allow_unassigned: bool = True) -> str:
    """Prepare ``text`` per RFC 4013 or raise SASLprepError.

    ``allow_unassigned`` selects stringprep "query" semantics (RFC 3454 §7), the default: a
    password presented for verification is a query.  Unassigned code points (in Unicode 3.2,
    which includes every emoji) pass through unchanged, so client and server still agree.
    """
    # RFC 4013 §2.1: non-ASCII spaces map to SPACE, "commonly mapped to nothing" (B.1) vanish.
    mapped = "".join(
        " " if stringprep.in_table_c12(c) else c for c in text if not stringprep.in_table_b1(c)
    )
    # RFC 4013 §2.2: Unicode normalisation form KC.
    prepared = _NFKC_3_2.normalize("NFKC", mapped)
    for c in prepared:
        if any(table(c) for table in _PROHIBITED):
            raise SASLprepError(f"prohibited character U+{ord(c):04X}")
        # RFC 4013 §2.5 / RFC 3454 §7: unassigned code points only in query strings.
        if not allow_unassigned and stringprep.in_table_a1(c):
            raise SASLprepError(f"unassigned character U+{ord(c):04X}")
    # RFC 4013 §2.4 / RFC 3454 §6: bidirectional text.
    if any(stringprep.in_table_d1(c) for c in prepared):
        if any(stringprep.in_table_d2(c) for c in prepared):
            raise SASLprepError("mixes right-to-left and left-to-right characters")
        if not (stringprep.in_table_d1(prepared[0]) and stringprep.in_table_d1(prepared[-1])):
            raise SASLprepError("right-to-left text must start and end with an R/AL character")
    return prepared
