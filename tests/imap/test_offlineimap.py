"""A real sync program: offlineimap3 syncs the account both ways over IMAPS with
COMPRESS=DEFLATE (its ``usecompression``); a further run changes nothing on either side.
Skipped when offlineimap is not installed (Debian package ``offlineimap3``)."""

from __future__ import annotations

import hashlib
import re
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest

from tests.helpers import PASSWORD
from tests.imap.conftest import USER, deliver, message
from tests.imap.raw import untagged

pytestmark = pytest.mark.skipif(
    shutil.which("offlineimap") is None, reason="offlineimap not installed (apt offlineimap3)"
)


def _fingerprint(srv) -> str:
    """SHA-256 of the server's self-signed certificate (imaplib2 matches only DNS names, so a
    CA file would not verify 127.0.0.1)."""
    pem = Path(srv.server.app.tls.cert_path).read_text()
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


def _config(tmp: Path, srv) -> Path:
    conf = tmp / "offlineimaprc"
    conf.write_text(
        f"""[general]
accounts = test
metadata = {tmp}/meta

[Account test]
localrepository = near
remoterepository = far

[Repository near]
type = Maildir
localfolders = {tmp}/mail

[Repository far]
type = IMAP
remotehost = 127.0.0.1
remoteport = {srv.port("imaps")}
remoteuser = {USER}
remotepass = {PASSWORD}
ssl = yes
cert_fingerprint = {_fingerprint(srv)}
auth_mechanisms = PLAIN
usecompression = yes
maxconnections = 2
"""
    )
    return conf


def _run(conf: Path) -> str:
    done = subprocess.run(
        ["offlineimap", "-c", str(conf), "-o", "-u", "basic"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "ERROR" not in output, output
    return output


def _server_state(connect) -> list[bytes]:
    raw = connect()
    out = []
    for line in untagged(raw.cmd('LIST "" "*"')):
        name = line.rsplit(b" ", 1)[1].strip().decode()
        out.append(untagged(raw.cmd(f'STATUS "{name}" (MESSAGES UIDNEXT HIGHESTMODSEQ)'))[0])
    raw.cmd("LOGOUT")
    return out


def _local_state(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_offlineimap_both_ways_then_no_changes(tmp_path, srv, connect):
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
    (local / "INBOX" / "new" / "1700000000.local.host").write_bytes(
        message("from local").replace(b"\r\n", b"\n")
    )
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
