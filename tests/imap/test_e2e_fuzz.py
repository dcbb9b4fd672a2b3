"""Property over a real session: token soups in the selected state always get a tagged
answer that is not an internal error, and the session stays usable."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.imap.conftest import deliver, message
from tests.imap.test_core_fuzz import WORDS

COMMANDS = [
    b"FETCH", b"UID FETCH", b"STORE", b"UID STORE", b"SEARCH", b"UID SEARCH", b"COPY", b"MOVE",
    b"UID EXPUNGE", b"STATUS INBOX", b"LIST", b"SELECT", b"EXAMINE", b"CREATE", b"APPEND INBOX",
    b"SORT", b"UID SORT", b"THREAD", b"UID THREAD", b"GETQUOTA", b"GETQUOTAROOT", b"SETQUOTA",
]  # fmt: skip
SAFE = [w for w in WORDS if w not in (b"\r\n", b"{3}", b"{2+}", b"~{1}", b"IDLE", b"COMPRESS")]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.sampled_from(COMMANDS), st.lists(st.sampled_from(SAFE), max_size=12))
def test_selected_session_survives_token_soup(connect_once, command, words):
    raw = connect_once
    line = command + b" " + b" ".join(w.replace(b"\r", b"").replace(b"\n", b"") for w in words)
    out = raw.cmd(line)
    assert out[-1].split(b" ")[1] in (b"OK", b"NO", b"BAD")
    assert b"[SERVERBUG]" not in out[-1]
    if b"[READ-" in out[-1] or b"[CLOSED]" in b"".join(out) or b"SELECT" in command:
        raw.cmd("SELECT INBOX")


@pytest.fixture
def connect_once(connect, srv):
    for i in range(3):
        deliver(srv, message(f"f{i}"))
    raw = connect()
    raw.cmd("SELECT INBOX")
    return raw
