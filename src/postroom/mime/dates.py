"""The Date: header as epoch seconds and as its own calendar day, for SEARCH SENTBEFORE/
SENTON/SENTSINCE and SORT DATE.

Almost every Date: is written the way RFC 5322 §3.3 recommends; those are read by one
regular expression, giving what ``email.utils.parsedate_tz`` gives them at a fraction of
its cost (a delivery reads the date twice).  Anything else, obsolete forms included, goes
to ``parsedate_tz``.
"""

from __future__ import annotations

import datetime
import re
from email.utils import parsedate_tz

MAX_DATE = 256  # bytes of a Date: value looked at; a valid date-time is far shorter

# [day-of-week ","] day month year hour ":" minute [":" second] zone [comment]
_COMMON = re.compile(
    r"[ \t]*(?:[A-Za-z]{3},[ \t]*)?(\d{1,2})[ \t]+([A-Za-z]{3})[ \t]+([1-9]\d{3})"
    r"[ \t]+(\d\d):(\d\d)(?::(\d\d))?[ \t]+([+-])(\d\d)(\d\d)(?:[ \t]+\([^()\\]*\))?[ \t]*"
)
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}

# year, month, day, hour, minute, second, offset from UTC in seconds
Fields = tuple[int, int, int, int, int, int, int]


def date_fields(text: str) -> Fields | None:
    """The fields of an RFC 5322 date-time (obsolete forms accepted); None when unparsable.
    The fields are not checked: 31 February or hour 99 come back as written."""
    m = _COMMON.fullmatch(text)
    if m is not None and (month := _MONTHS.get(m[2].lower())) is not None:
        offset = int(m[8]) * 3600 + int(m[9]) * 60
        return (
            int(m[3]),
            month,
            int(m[1]),
            int(m[4]),
            int(m[5]),
            int(m[6] or 0),
            -offset if m[7] == "-" else offset,
        )
    try:
        parsed = parsedate_tz(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    year, month, day, hour, minute, second = parsed[:6]
    return year, month, day, hour, minute, second, parsed[9] or 0


def parse_date(raw: bytes) -> float | None:
    """Epoch seconds; None when unparsable or not a real date-time.  "-0000" means UTC with
    no information about the local zone (RFC 5322 §3.3)."""
    fields = date_fields(raw[:MAX_DATE].decode("latin-1"))
    if fields is None:
        return None
    *when, offset = fields
    try:
        zone = datetime.timezone(datetime.timedelta(seconds=offset))
        return datetime.datetime(*when, tzinfo=zone).timestamp()
    except (OverflowError, ValueError):
        return None


def sent_day(text: str | None) -> int | None:
    """The date's own calendar day (in its zone) as YYYYMMDD (RFC 9051 §6.4.4 SENTON)."""
    fields = date_fields(text) if text else None
    if fields is None:
        return None
    year, month, day = fields[:3]
    if not (1 <= month <= 12 and 1 <= day <= 31 and 0 < year < 10000):
        return None
    return year * 10000 + month * 100 + day
