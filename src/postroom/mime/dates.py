"""The Date: header as epoch seconds, for SEARCH SENTBEFORE/SENTON/SENTSINCE and SORT DATE."""

from __future__ import annotations

import datetime
from email.utils import parsedate_to_datetime

MAX_DATE = 256  # bytes of a Date: value looked at; a valid date-time is far shorter


def parse_date(raw: bytes) -> float | None:
    """RFC 5322 §3.3 date-time (obsolete forms accepted); None when unparsable."""
    text = raw[:MAX_DATE].decode("latin-1")
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        # RFC 5322 §3.3: "-0000" means UTC with no information about the local zone
        when = when.replace(tzinfo=datetime.UTC)
    try:
        return when.timestamp()
    except (OverflowError, ValueError):
        return None
