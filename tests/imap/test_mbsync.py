"""A real sync program: mbsync (isync) syncs the account both ways; a further run changes
nothing on either side.  Skipped when mbsync is not installed (apt package ``isync``)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import PASSWORD
from tests.imap.conftest import USER
from tests.imap.sync_scenario import both_ways_then_no_changes

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


def test_mbsync_both_ways_then_no_changes(tmp_path, srv, connect):
    conf = _config(tmp_path, srv)
    both_ways_then_no_changes(
        srv, connect, tmp_path / "mail", lambda: _run(conf), ignore_prefix=".mbsync"
    )
