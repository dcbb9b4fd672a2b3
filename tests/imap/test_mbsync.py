"""A real sync program: mbsync (isync) syncs the account both ways; a further run changes
nothing on either side.  Skipped when mbsync is not installed (apt package ``isync``)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import PASSWORD
from tests.imap.conftest import USER, deliver, message
from tests.imap.raw import untagged

pytestmark = pytest.mark.skipif(shutil.which("mbsync") is None, reason="mbsync not installed")


def _config(tmp: Path, srv) -> Path:
    local = tmp / "mail"
    local.mkdir()
    conf = tmp / "mbsyncrc"
    conf.write_text(
        f"""IMAPAccount remote
Host 127.0.0.1
Port {srv.port("imaps")}
User {USER}
Pass "{PASSWORD}"
SSLType IMAPS
# Cyrus SASL's SCRAM refuses iteration counts above 10,000 (see the imap report)
AuthMechs PLAIN
SystemCertificates no
CertificateFile {srv.server.app.tls.cert_path}

IMAPStore far
Account remote

MaildirStore near
Path {local}/
Inbox {local}/INBOX
SubFolders Verbatim

Channel all
Far :far:
Near :near:
Patterns *
Create Both
Expunge Both
SyncState *
"""
    )
    return conf


def _run(conf: Path) -> str:
    done = subprocess.run(
        ["mbsync", "-c", str(conf), "-a"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def _server_state(connect) -> list[bytes]:
    raw = connect()
    out = []
    for line in untagged(raw.cmd('LIST "" "*"')):
        name = line.rsplit(b" ", 1)[1].strip().decode()
        status = untagged(raw.cmd(f'STATUS "{name}" (MESSAGES UIDNEXT HIGHESTMODSEQ)'))[0]
        out.append(status)
    raw.cmd("LOGOUT")
    return out


def _local_state(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()
                  and not p.name.startswith(".mbsync"))  # fmt: skip


def test_mbsync_both_ways_then_no_changes(tmp_path, srv, connect):
    for i in range(3):
        deliver(srv, message(f"server {i}"), flags=["\\Seen"] if i == 0 else [])
    deliver(srv, message("archived"), mailbox="Archive")
    conf = _config(tmp_path, srv)
    _run(conf)
    local = tmp_path / "mail"
    inbox = list((local / "INBOX").rglob("*,U=*"))
    assert len(inbox) == 3
    assert len(list((local / "Archive").rglob("*,U=*"))) == 1
    # change both sides: a local new message and a flag, a server-side new message
    new = local / "INBOX" / "new" / "1700000000.local.host"
    new.write_bytes(message("from local").replace(b"\r\n", b"\n"))
    unseen = next(p for p in inbox if not re.search(r":2,.*S", p.name))
    unseen.rename(unseen.with_name(unseen.name.split(":2,")[0] + ":2,FS"))
    deliver(srv, message("server late"))
    _run(conf)
    raw = connect()
    raw.cmd("SELECT INBOX")
    fetched = untagged(raw.cmd("FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])"))
    assert len(fetched) == 5
    assert any(b"from local" in ln for ln in fetched)
    assert sum(b"\\Flagged" in ln for ln in fetched) == 1
    assert len(list((local / "INBOX").rglob("*,U=*"))) == 5
    # a further run finds nothing to do on either side
    before = (_server_state(connect), _local_state(local))
    _run(conf)
    assert (_server_state(connect), _local_state(local)) == before
