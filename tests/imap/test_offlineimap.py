"""A real sync program: offlineimap3 syncs the account both ways over IMAPS with
COMPRESS=DEFLATE (its ``usecompression``); a further run changes nothing on either side.
Skipped when offlineimap is not installed (Debian package ``offlineimap3``)."""

from __future__ import annotations

import hashlib
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest

from tests.helpers import PASSWORD
from tests.imap.conftest import USER
from tests.imap.sync_scenario import both_ways_then_no_changes

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


def test_offlineimap_both_ways_then_no_changes(tmp_path, srv, connect):
    conf = _config(tmp_path, srv)
    both_ways_then_no_changes(srv, connect, tmp_path / "mail", lambda: _run(conf))
