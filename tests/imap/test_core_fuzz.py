"""Property: any bytes, in any state, give replies or commands — never an exception — and a
tagged or untagged BAD/NO for whatever is not a valid command."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.imap.core import Close, Core, Execute, Send, State
from postroom.imap.framer import Line

WORDS = [
    b"a1", b"*", b"UID", b"FETCH", b"SEARCH", b"STORE", b"LOGIN", b"SELECT", b"APPEND", b"LIST",
    b"STATUS", b"AUTHENTICATE", b"ENABLE", b"ID", b"NOOP", b"COPY", b"MOVE", b"EXPUNGE",
    b"CREATE", b"RENAME", b"IDLE", b"1:*", b"$", b"1,2:4", b"(", b")", b"[", b"]", b"<0.5>",
    b"BODY", b"BODY.PEEK", b"BINARY", b"HEADER.FIELDS", b"TEXT", b"MIME", b"1.2", b"FLAGS",
    b"+FLAGS.SILENT", b"\\Seen", b'"quoted"', b'"bad\\x"', b"{3}", b"{2+}", b"~{1}", b"NIL",
    b"OR", b"NOT", b"SINCE", b"1-Jan-2020", b"RETURN", b"CHARSET", b"QRESYNC", b"CONDSTORE",
    b"CHANGEDSINCE", b"UNCHANGEDSINCE", b"MODSEQ", b"\r\n", b" ", b"\0", b"\xff", b"INBOX",
    b"SORT", b"THREAD", b"REVERSE", b"ARRIVAL", b"SUBJECT", b"DISPLAYFROM", b"REFERENCES",
    b"ORDEREDSUBJECT", b"UTF-8", b"GETQUOTA", b"GETQUOTAROOT", b"SETQUOTA", b"STORAGE",
    b"COMPRESS", b"DEFLATE", b'""',
]  # fmt: skip
tokens = st.lists(st.one_of(st.sampled_from(WORDS), st.binary(max_size=6)), max_size=30)


def run(core: Core, data: bytes) -> list:
    core.feed(data)
    out = []
    for _ in range(10_000):
        ev = core.next_event()
        if ev is None:
            break
        out.append(ev)
        if isinstance(ev, Close):
            break
    return out


def check(events: list) -> None:
    for ev in events:
        assert isinstance(ev, Send | Close | Execute | Line)
        if isinstance(ev, Send | Close):
            assert ev.data.endswith(b"\r\n")
            assert b"\0" not in ev.data
            for line in ev.data.split(b"\r\n")[:-1]:
                assert line.startswith((b"* ", b"+ ")) or b" " in line


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(list(State)[:3]), st.binary(max_size=400))
def test_random_bytes(state, data):
    core = Core(message_size=1000)
    core.set_state(state)
    check(run(core, data))


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(list(State)[:3]), tokens)
def test_token_soup(state, parts):
    core = Core(message_size=1000)
    core.set_state(state)
    data = b"a1 " + b" ".join(parts) + b"\r\n"
    check(run(core, data))


def test_state_rules():
    core = Core(message_size=1000)
    (ev,) = run(core, b"a FETCH 1 FLAGS\r\n")
    assert ev == Send(b"a BAD Log in first\r\n")
    core.set_state(State.AUTHENTICATED)
    (ev,) = run(core, b"b FETCH 1 FLAGS\r\n")
    assert ev == Send(b"b BAD No mailbox selected\r\n")
    (ev,) = run(core, b"c LOGIN a b\r\n")
    assert ev == Send(b"c BAD Already authenticated\r\n")
    core.set_state(State.SELECTED)
    (ev,) = run(core, b"d UID FETCH 1 FLAGS\r\n")
    assert isinstance(ev, Execute) and ev.command.name == "UID FETCH"


def test_limits_switch_after_login():
    core = Core(message_size=100_000)
    (ev,) = run(core, b"a APPEND INBOX {50000}\r\n")
    assert isinstance(ev, Send) and ev.data.startswith(b"a NO [TOOBIG]")
    core.set_state(State.AUTHENTICATED)
    (ev,) = run(core, b"a APPEND INBOX {50000}\r\n")
    assert ev == Send(b"+ Ready for literal data\r\n")
