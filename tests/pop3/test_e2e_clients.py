"""Real POP3 retrieval programs against postroom: fetchmail (STLS) and getmail6 (pop3s).

Skipped when the program is not installed (.ci/run installs both: ``apt-get install fetchmail
getmail6``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import PASSWORD
from tests.pop3.conftest import Drop

MESSAGES = [
    b"From: a@example.test\r\nSubject: first\r\nMessage-ID: <1@example.test>\r\n\r\nhello\r\n",
    b"From: b@example.test\r\nSubject: second\r\n\r\n.dotted line\r\n..two\r\nend\r\n",
    b"Subject: third\r\n\r\n" + b"long body line\r\n" * 5000,
]

# Writes each message it is given on stdin to a new numbered file in the folder argv[1].
MDA = """
import os, sys
folder = sys.argv[1]
data = sys.stdin.buffer.read()
n = len(os.listdir(folder))
with open(os.path.join(folder, f"{n:04d}.eml"), "wb") as fh:
    fh.write(data)
"""


def body_of(data: bytes) -> bytes:
    """The part after the first blank line (clients add their own Received/Delivered-To)."""
    return data.replace(b"\r\n", b"\n").split(b"\n\n", 1)[1]


def expected_bodies() -> list[bytes]:
    return sorted(body_of(m) for m in MESSAGES)


@pytest.mark.skipif(shutil.which("fetchmail") is None, reason="fetchmail not installed")
def test_fetchmail_retrieves_over_stls(strict_drop: Drop, tmp_path: Path):
    for message in MESSAGES:
        strict_drop.put(message)
    out = tmp_path / "out"
    out.mkdir()
    mda = tmp_path / "mda.py"
    mda.write_text(MDA)
    rc = tmp_path / "fetchmailrc"
    rc.write_text(
        f"poll 127.0.0.1 protocol POP3 port {strict_drop.port} timeout 30\n"
        f'  user "{strict_drop.address}" there with password "{PASSWORD}"\n'
        f"  sslproto TLS1.2+ no sslcertck fetchall\n"
        f'  mda "{sys.executable} {mda} {out}"\n'
    )
    rc.chmod(0o600)
    env = {**os.environ, "FETCHMAILHOME": str(tmp_path), "HOME": str(tmp_path)}
    result = subprocess.run(
        ["fetchmail", "-f", str(rc), "--nosyslog", "--nobounce", "-v"],
        capture_output=True,
        env=env,
        timeout=120,
    )
    log = result.stdout.decode(errors="replace") + result.stderr.decode(errors="replace")
    assert result.returncode == 0, log
    assert "STLS" in log
    got = sorted(body_of(p.read_bytes()) for p in out.iterdir())
    assert got == expected_bodies()
    assert strict_drop.uids() == []  # fetched and deleted (no "keep")


@pytest.mark.skipif(shutil.which("getmail") is None, reason="getmail6 not installed")
def test_getmail_retrieves_over_pop3s(strict_drop: Drop, tmp_path: Path):
    for message in MESSAGES:
        strict_drop.put(message)
    out = tmp_path / "out"
    out.mkdir()
    mda = tmp_path / "mda.py"
    mda.write_text(MDA)
    cert = Path(strict_drop.srv.settings.data_dir) / "tls" / "cert.pem"
    rc = tmp_path / "getmailrc"
    rc.write_text(
        "[retriever]\n"
        "type = SimplePOP3SSLRetriever\n"
        "server = 127.0.0.1\n"
        f"port = {strict_drop.srv.port('pop3s')}\n"
        f"username = {strict_drop.address}\n"
        f"password = {PASSWORD}\n"
        f"ca_certs = {cert}\n"
        "[destination]\n"
        "type = MDA_external\n"
        f"path = {sys.executable}\n"
        f'arguments = ("{mda}", "{out}")\n'
        "allow_root_commands = true\n"
        "[options]\n"
        "read_all = true\n"
        "delete = true\n"
    )
    result = subprocess.run(
        ["getmail", f"--getmaildir={tmp_path}", f"--rcfile={rc}"],
        capture_output=True,
        timeout=120,
    )
    log = result.stdout.decode(errors="replace") + result.stderr.decode(errors="replace")
    assert result.returncode == 0, log
    got = sorted(body_of(p.read_bytes()) for p in out.iterdir())
    assert got == expected_bodies()
    assert strict_drop.uids() == []
