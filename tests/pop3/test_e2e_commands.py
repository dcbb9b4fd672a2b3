"""Every RFC 1939 / 2449 / 6856 command end to end with poplib against a real server."""

from __future__ import annotations

import poplib

import pytest

from tests.helpers import PASSWORD
from tests.pop3.conftest import Drop

MSG1 = b"From: a@example.test\r\nSubject: one\r\n\r\nline 1\r\nline 2\r\nline 3\r\n"
MSG2 = b"Subject: two\r\n\r\nhello\r\n"


def test_greeting_and_capa(drop: Drop):
    pop = drop.client()
    assert pop.getwelcome().startswith(b"+OK")
    assert b"<" not in pop.getwelcome()  # no APOP timestamp
    caps = pop.capa()
    for name in ("TOP", "UIDL", "USER", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "STLS"):
        assert name in caps
    assert caps["SASL"] == ["PLAIN", "LOGIN", "SCRAM-SHA-256"]
    assert caps["EXPIRE"] == ["NEVER"] and caps["IMPLEMENTATION"] == ["postroom"]
    assert caps["UTF8"] == ["USER"]
    pop.quit()


def test_transaction_commands(drop: Drop):
    uid1, uid2 = drop.put(MSG1), drop.put(MSG2)
    pop = drop.login()
    assert pop.stat() == (2, len(MSG1) + len(MSG2))
    resp, listing, _ = pop.list()
    assert resp.startswith(b"+OK")
    assert listing == [b"1 %d" % len(MSG1), b"2 %d" % len(MSG2)]
    assert pop.list(2) == b"+OK 2 %d" % len(MSG2)
    v = drop.uidvalidity()
    assert pop.uidl()[1] == [b"1 %d.%d" % (v, uid1), b"2 %d.%d" % (v, uid2)]
    assert pop.uidl(1) == b"+OK 1 %d.%d" % (v, uid1)
    resp, lines, octets = pop.retr(1)
    assert resp == b"+OK %d octets" % len(MSG1)
    assert b"\r\n".join(lines) + b"\r\n" == MSG1
    resp, lines, _ = pop.top(1, 1)
    assert lines == [b"From: a@example.test", b"Subject: one", b"", b"line 1"]
    assert pop.top(2, 0)[1] == [b"Subject: two", b""]
    assert pop.noop().startswith(b"+OK")
    assert pop.dele(1).startswith(b"+OK")
    assert pop.stat() == (1, len(MSG2))
    with pytest.raises(poplib.error_proto):
        pop.retr(1)
    assert pop.rset().startswith(b"+OK")
    assert pop.stat()[0] == 2
    with pytest.raises(poplib.error_proto):
        pop.retr(3)
    assert pop.quit().startswith(b"+OK")
    assert drop.uids() == [uid1, uid2]


def test_uidl_stable_across_sessions(drop: Drop):
    drop.put(MSG1)
    drop.put(MSG2)
    first = drop.login()
    listing = first.uidl()[1]
    first.dele(1)
    first.quit()
    second = drop.login()
    assert second.uidl()[1] == [b"1 " + listing[1].split()[1]]
    second.quit()


def test_message_numbers_fixed_for_the_session(drop: Drop):
    drop.put(MSG1)
    pop = drop.login()
    drop.put(MSG2)  # arrives during the session
    assert pop.stat() == (1, len(MSG1))
    pop.quit()
    pop = drop.login()
    assert pop.stat()[0] == 2
    pop.quit()


def test_dot_stuffing_and_line_endings_round_trip(drop: Drop):
    body = b"Subject: dots\r\n\r\n.\r\n..\r\n.leading\r\nmid . dot\r\n.\r\nend"
    drop.put(body)
    drop.put(b"Subject: bare lf\n\nfirst\n.second\n")
    pop = drop.login()
    lines = pop.retr(1)[1]
    assert lines == [b"Subject: dots", b"", b".", b"..", b".leading", b"mid . dot", b".", b"end"]
    assert pop.retr(2)[1] == [b"Subject: bare lf", b"", b"first", b".second"]
    pop.quit()


def test_utf8_command_and_utf8_message(drop: Drop):
    data = "Subject: Grüße\r\nFrom: jörg@exämple.test\r\n\r\nMit freundlichen Grüßen\r\n"
    drop.put(data.encode())
    pop = drop.client()
    assert pop.utf8().startswith(b"+OK")
    pop.user(drop.address)
    pop.pass_(PASSWORD)
    lines = pop.retr(1)[1]
    assert lines[0].decode() == "Subject: Grüße"
    pop.quit()


def test_apop_refused(drop: Drop):
    pop = drop.client()
    with pytest.raises(poplib.error_proto, match="APOP"):
        pop._shortcmd(f"APOP {drop.address} c4c9334bac560ecc979e58001b3e22fb")
    pop.quit()


def test_wrong_password(drop: Drop):
    pop = drop.client()
    pop.user(drop.address)
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        pop.pass_("wrong")
    pop.user(drop.address)
    assert pop.pass_(PASSWORD).startswith(b"+OK")
    pop.quit()


def test_empty_maildrop(drop: Drop):
    pop = drop.login()
    assert pop.stat() == (0, 0)
    assert pop.list()[1] == [] and pop.uidl()[1] == []
    pop.quit()


def test_pipelined_commands(drop: Drop):
    drop.put(MSG1)
    drop.put(MSG2)
    raw = drop.raw()
    raw.send(
        f"USER {drop.address}\r\nPASS {PASSWORD}\r\nSTAT\r\nRETR 2\r\nLIST 1\r\nDELE 1\r\n"
        "UIDL 1\r\nQUIT\r\n".encode()
    )
    assert raw.line().startswith(b"+OK")  # USER
    assert raw.line().startswith(b"+OK maildrop has 2")
    assert raw.line() == b"+OK 2 %d\r\n" % (len(MSG1) + len(MSG2))
    assert raw.line().startswith(b"+OK")
    assert raw.multiline() == [b"Subject: two", b"", b"hello"]
    assert raw.line() == b"+OK 1 %d\r\n" % len(MSG1)
    assert raw.line() == b"+OK message 1 deleted\r\n"
    assert raw.line().startswith(b"-ERR")
    assert raw.line().startswith(b"+OK")
    assert raw.line() == b""
    raw.close()
    assert len(drop.uids()) == 1
