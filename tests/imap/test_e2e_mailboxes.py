"""Authenticated-state commands end to end: CREATE/DELETE/RENAME, SUBSCRIBE, LIST with its
extensions, LSUB, STATUS, APPEND with APPENDUID, SELECT/EXAMINE, mailbox name encodings."""

from __future__ import annotations

from imapclient import IMAPClient

from tests.helpers import PASSWORD, client_tls_context
from tests.imap.conftest import USER, deliver, message
from tests.imap.raw import status, tagged, untagged


def test_create_with_parents_delete_rename(connect):
    raw = connect()
    assert status(raw.cmd("CREATE a/b/c")) == b"OK"
    names = b"".join(untagged(raw.cmd('LIST "" "a*"')))
    assert b'(\\HasChildren) "/" a\r\n' in names and b'(\\HasNoChildren) "/" a/b/c' in names
    assert tagged(raw.cmd("CREATE a/b/c")).split(b" ", 2)[2].startswith(b"[ALREADYEXISTS]")
    assert b"[ALREADYEXISTS]" in tagged(raw.cmd("CREATE inbox"))
    assert b"[HASCHILDREN]" in tagged(raw.cmd("DELETE a/b"))
    assert b"[NONEXISTENT]" in tagged(raw.cmd("DELETE nope"))
    assert b"[CANNOT]" in tagged(raw.cmd("DELETE INBOX"))
    assert status(raw.cmd("RENAME a x/y")) == b"OK"
    names = b"".join(untagged(raw.cmd('LIST "" "*"')))
    assert b" x/y/b/c\r\n" in names and b' "/" a\r\n' not in names
    assert b"[NONEXISTENT]" in tagged(raw.cmd("RENAME nope z"))
    assert b"[ALREADYEXISTS]" in tagged(raw.cmd("RENAME x/y Trash"))
    assert status(raw.cmd("DELETE x/y/b/c")) == b"OK"
    assert status(raw.cmd("CREATE trailing/")) == b"OK"
    assert untagged(raw.cmd('LIST "" trailing'))[0].endswith(b'"/" trailing\r\n')
    assert b"[CANNOT]" in tagged(raw.cmd('CREATE "bad%name"'))


def test_rename_inbox_moves_messages(connect, srv):
    deliver(srv, message("one"))
    raw = connect()
    assert status(raw.cmd("RENAME INBOX Old")) == b"OK"
    st = untagged(raw.cmd("STATUS Old (MESSAGES)"))[0]
    assert st == b"* STATUS Old (MESSAGES 1)\r\n"
    assert untagged(raw.cmd("STATUS INBOX (MESSAGES)"))[0] == b"* STATUS INBOX (MESSAGES 0)\r\n"


def test_create_special_use_and_list_options(connect):
    raw = connect()
    assert status(raw.cmd("CREATE Important (USE (\\Flagged))")) == b"OK"
    out = untagged(raw.cmd('LIST (SPECIAL-USE) "" "*"'))
    listed = b"".join(out)
    assert b"\\Flagged" in listed and b"\\Sent" in listed and b" INBOX" not in listed
    assert status(raw.cmd("SUBSCRIBE Sent")) == b"OK"
    out = untagged(raw.cmd('LIST "" "*" RETURN (SUBSCRIBED CHILDREN)'))
    sent = [ln for ln in out if ln.endswith(b" Sent\r\n")][0]
    assert b"\\Subscribed" in sent and b"\\HasNoChildren" in sent
    out = untagged(raw.cmd('LIST (SUBSCRIBED) "" "*"'))
    assert [ln for ln in out if b"Sent" in ln]
    assert not [ln for ln in out if b"Important" in ln]
    out = untagged(raw.cmd('LIST "" ("INBOX" "Dr%") RETURN (STATUS (MESSAGES UIDNEXT))'))
    assert b"* STATUS Drafts (MESSAGES 0 UIDNEXT 1)\r\n" in out
    assert untagged(raw.cmd('LIST "" ""')) == [b'* LIST (\\Noselect) "/" ""\r\n']


def test_subscribed_recursivematch_and_lsub(connect):
    raw = connect()
    raw.cmd("CREATE p/q")
    raw.cmd("SUBSCRIBE p/q")
    out = untagged(raw.cmd('LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"'))
    assert [ln for ln in out if ln.endswith(b'"/" p ("CHILDINFO" ("SUBSCRIBED"))\r\n')]
    out = untagged(raw.cmd('LSUB "" "*"'))
    assert b'* LSUB () "/" p/q\r\n' in out
    assert status(raw.cmd("UNSUBSCRIBE p/q")) == b"OK"
    assert not [ln for ln in untagged(raw.cmd('LSUB "" "*"')) if b"p/q" in ln]


def test_list_wildcards(connect):
    raw = connect()
    raw.cmd("CREATE w/x/y")
    raw.cmd("DELETE w/x")  # refused: has children
    out = [ln.rsplit(b" ", 1)[1].strip() for ln in untagged(raw.cmd('LIST "w/" "%"'))]
    assert out == [b"w/x"]
    out = [ln.rsplit(b" ", 1)[1].strip() for ln in untagged(raw.cmd('LIST "" "w/*"'))]
    assert out == [b"w/x", b"w/x/y"]
    out = untagged(raw.cmd('LIST "" "inbox"'))
    assert out == [b'* LIST (\\HasNoChildren) "/" INBOX\r\n']


def test_modified_utf7_and_utf8_names(connect):
    raw = connect()
    assert status(raw.cmd("CREATE &ZeVnLIqe-")) == b"OK"  # 日本語 in modified UTF-7
    assert [ln for ln in untagged(raw.cmd('LIST "" "*"')) if ln.endswith(b" &ZeVnLIqe-\r\n")]
    raw.cmd("ENABLE UTF8=ACCEPT")
    out = b"".join(untagged(raw.cmd('LIST "" "*"')))
    assert "日本語".encode() in out
    assert b"[CANNOT]" not in tagged(raw.cmd(b"SELECT {9+}\r\n" + "日本語".encode()))


def test_status_items(connect, srv):
    deliver(srv, message("a"), flags=["\\Seen"])
    deliver(srv, message("b"), flags=["\\Deleted"])
    raw = connect()
    out = untagged(
        raw.cmd(
            "STATUS INBOX (MESSAGES UNSEEN DELETED SIZE RECENT UIDNEXT UIDVALIDITY HIGHESTMODSEQ)"
        )
    )
    line = out[0]
    for part in (
        b"MESSAGES 2",
        b"UNSEEN 1",
        b"DELETED 1",
        b"RECENT 2",
        b"UIDNEXT 3",
        b"UIDVALIDITY ",
        b"HIGHESTMODSEQ ",
        b"SIZE ",
    ):
        assert part in line
    assert b"[NONEXISTENT]" in tagged(raw.cmd("STATUS nope (MESSAGES)"))


def test_append_appenduid_trycreate_and_literal_plus(connect):
    raw = connect()
    data = message("appended")
    out = raw.cmd(
        b'APPEND Drafts (\\Draft $Custom) "14-Jul-2020 10:00:00 +0200" {%d+}\r\n' % len(data) + data
    )
    assert tagged(out).split(b" ")[2] == b"[APPENDUID"
    out = raw.cmd(b"APPEND nope {5+}\r\nhello")
    assert b"[TRYCREATE]" in tagged(out)
    raw.cmd("SELECT Drafts")
    out = untagged(raw.cmd("FETCH 1 (FLAGS INTERNALDATE RFC822.SIZE)"))
    assert b"\\Draft" in out[0] and b"$Custom" in out[0]
    assert b'INTERNALDATE "14-Jul-2020 08:00:00 +0000"' in out[0]
    assert b"RFC822.SIZE %d" % len(data) in out[0]


def test_append_over_size_limit(server_factory):
    srv = server_factory(limits={"message_size": 2000})
    srv.add_user(USER)
    from tests.imap.raw import Raw

    raw = Raw(srv.port("imaps"))
    raw.login(USER, PASSWORD)
    raw.send(b"a APPEND INBOX {3000}\r\n")
    assert raw.line().startswith(b"a NO [TOOBIG]")
    raw.send(b"b APPEND INBOX {3000+}\r\n" + b"c LOGOUT\r\n" * 300 + b"\r\n")
    assert raw.line().startswith(b"b NO [TOOBIG]")
    assert status(raw.cmd("NOOP")) == b"OK"  # the 3000 bytes were discarded, not executed
    raw.close()


def test_append_to_selected_mailbox_announces_exists(connect):
    raw = connect()
    raw.cmd("SELECT INBOX")
    data = message("x")
    out = raw.cmd(b"APPEND INBOX {%d+}\r\n" % len(data) + data)
    assert b"* 1 EXISTS\r\n" in out


def test_select_examine_responses(connect, srv):
    deliver(srv, message("a"), flags=["\\Seen"])
    deliver(srv, message("b"), flags=["$Label1"])
    raw = connect()
    out = raw.cmd("SELECT INBOX")
    text = b"".join(out)
    assert b"* 2 EXISTS\r\n" in text and b"* 2 RECENT\r\n" in text
    assert b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1)" in text
    assert b"[PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1 \\*)]" in text
    assert b"[UNSEEN 2]" in text and b"[UIDVALIDITY " in text and b"[UIDNEXT 3]" in text
    assert b"[HIGHESTMODSEQ " in text
    assert tagged(out).endswith(b"OK [READ-WRITE] SELECT completed\r\n")
    out = raw.cmd("EXAMINE INBOX")
    assert out[0] == b"* OK [CLOSED] Previous mailbox is now closed\r\n"
    assert b"* 0 RECENT\r\n" in out  # claimed by the first SELECT
    assert b"[READ-ONLY]" in tagged(out)
    assert b"[NONEXISTENT]" in tagged(raw.cmd("SELECT nope"))


def test_imap4rev2_select(connect):
    raw = connect()
    raw.cmd("ENABLE IMAP4rev2")
    out = b"".join(raw.cmd("SELECT inbox"))
    assert b"RECENT" not in out and b'* LIST () "/" INBOX\r\n' in out


def test_imapclient_folder_workflow(srv):
    with IMAPClient("127.0.0.1", port=srv.port("imaps"), ssl_context=client_tls_context()) as c:
        c.login(USER, PASSWORD)
        c.create_folder("Projects/2024")
        assert c.folder_exists("Projects")
        c.rename_folder("Projects/2024", "Projects/2025")
        folders = [f[2] for f in c.list_folders()]
        assert "Projects/2025" in folders and "Projects/2024" not in folders
        assert c.find_special_folder(b"\\Sent") == "Sent"
        c.subscribe_folder("Projects/2025")
        assert "Projects/2025" in [f[2] for f in c.list_sub_folders()]
        uid = c.append("Projects/2025", message("via imapclient"), flags=[b"\\Seen"])
        assert b"APPENDUID" in uid
        assert c.folder_status("Projects/2025", ["MESSAGES"])[b"MESSAGES"] == 1
        c.delete_folder("Projects/2025")
        assert "Projects/2025" not in [f[2] for f in c.list_folders()]


def test_append_and_copy_over_quota(srv):
    from tests.imap.raw import Raw

    srv.add_user("small@example.test", quota=3000)
    raw = Raw(srv.port("imaps"))
    raw.login("small@example.test", PASSWORD)
    data = message("fits", body="x" * 1200)
    assert status(raw.cmd(b"APPEND INBOX {%d+}\r\n" % len(data) + data)) == b"OK"
    big = message("too big", body="x" * 2000)
    assert b"[OVERQUOTA]" in tagged(raw.cmd(b"APPEND INBOX {%d+}\r\n" % len(big) + big))
    raw.cmd("SELECT INBOX")
    assert status(raw.cmd("COPY 1 Archive")) == b"OK"
    assert b"[OVERQUOTA]" in tagged(raw.cmd("COPY 1 Archive"))
    raw.close()
