"""The two-way sync a real IMAP sync program must get right, shared by the mbsync and
offlineimap tests: first sync, changes on both sides, second sync, then a run with nothing to do."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from tests.imap.conftest import deliver, message
from tests.imap.raw import untagged


def server_state(connect) -> list[bytes]:
    raw = connect()
    out = []
    for line in untagged(raw.cmd('LIST "" "*"')):
        name = line.rsplit(b" ", 1)[1].strip().decode()
        out.append(untagged(raw.cmd(f'STATUS "{name}" (MESSAGES UIDNEXT HIGHESTMODSEQ)'))[0])
    raw.cmd("LOGOUT")
    return out


def local_state(root: Path, ignore_prefix: str | None = None) -> list[str]:
    """The Maildir's files; ``ignore_prefix`` names the program's own state files."""
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and not (ignore_prefix and p.name.startswith(ignore_prefix))
    )


def both_ways_then_no_changes(
    srv, connect, local: Path, run: Callable[[], object], ignore_prefix: str | None = None
) -> None:
    for i in range(3):
        deliver(srv, message(f"server {i}"), flags=["\\Seen"] if i == 0 else [])
    deliver(srv, message("archived"), mailbox="Archive")
    run()
    inbox = list((local / "INBOX").rglob("*,U=*"))
    assert len(inbox) == 3
    assert len(list((local / "Archive").rglob("*,U=*"))) == 1
    # change both sides: a local new message and a flag, a server-side new message
    (local / "INBOX" / "new" / "1700000000.local.host").write_bytes(
        message("from local").replace(b"\r\n", b"\n")
    )
    unseen = next(p for p in inbox if not re.search(r":2,.*S", p.name))
    unseen.rename(unseen.with_name(unseen.name.split(":2,")[0] + ":2,FS"))
    deliver(srv, message("server late"))
    run()
    raw = connect()
    raw.cmd("SELECT INBOX")
    fetched = untagged(raw.cmd("FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])"))
    assert len(fetched) == 5
    assert any(b"from local" in ln for ln in fetched)
    assert sum(b"\\Flagged" in ln for ln in fetched) == 1
    assert len(list((local / "INBOX").rglob("*,U=*"))) == 5
    # a further run finds nothing to do on either side
    before = (server_state(connect), local_state(local, ignore_prefix))
    run()
    assert (server_state(connect), local_state(local, ignore_prefix)) == before
