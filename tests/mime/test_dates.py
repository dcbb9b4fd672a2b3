"""Date: values read by the common-form shortcut give what email.utils gives them."""

from __future__ import annotations

import datetime
from email.utils import parsedate_to_datetime, parsedate_tz

from hypothesis import example, given, settings
from hypothesis import strategies as st

from postroom.mime.dates import date_fields, parse_date, sent_day


def reference_epoch(text: str) -> float | None:
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    try:
        return when.timestamp()
    except (OverflowError, ValueError):
        return None


def reference_day(text: str) -> int | None:
    try:
        parsed = parsedate_tz(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    year, month, day = parsed[:3]
    if not (1 <= month <= 12 and 1 <= day <= 31 and 0 < year < 10000):
        return None
    return year * 10000 + month * 100 + day


_SPACE = st.sampled_from([" ", "  ", "\t", "", "\xa0"])
dates = st.builds(
    lambda *parts: "".join(parts),
    _SPACE,
    st.sampled_from(["", "Sun, ", "Mon,", "xyz, ", "Sun ", "Sunday, "]),
    st.sampled_from(["6", "06", "31", "0", "29", "123", "x"]),
    _SPACE,
    st.sampled_from(["Dec", "dec", "FEB", "Feb", "Foo", "December", "Dec,"]),
    _SPACE,
    st.sampled_from(["2026", "1999", "0099", "99", "10000", "1000", "2026,"]),
    _SPACE,
    st.sampled_from(["10:18:02", "10:18", "24:00:00", "23:59:60", "9:05:00", "10.18.02"]),
    _SPACE,
    st.sampled_from(
        ["+0000", "-0000", "+0530", "-0800", "+2400", "+0099", "GMT", "EST", "", "+00"]
    ),
    st.sampled_from(["", " (UTC)", " (a (b) c)", " junk", "  ", "\t(PDT) "]),
)


@settings(max_examples=2000, deadline=None)
@given(dates)
@example("Sun,  6 Dec 2026 10:18:02 +0000 (UTC)")
@example("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)")
def test_shortcut_matches_the_standard_library(text: str) -> None:
    assert parse_date(text.encode("latin-1")) == reference_epoch(text)
    assert sent_day(text) == reference_day(text)


def test_common_form_takes_the_shortcut() -> None:
    text = "Sun,  6 Dec 2026 10:18:02 +0100 (CET)"
    assert date_fields(text) == (2026, 12, 6, 10, 18, 2, 3600)
    assert sent_day(text) == 20261206
    assert (
        parse_date(text.encode())
        == datetime.datetime(2026, 12, 6, 9, 18, 2, tzinfo=datetime.UTC).timestamp()
    )
