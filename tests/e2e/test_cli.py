"""The `postroom` command as an admin uses it: serve, administer while running, stop."""

from __future__ import annotations

import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from postroom.config import SERVICES


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(
    *args: str, config: Path | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "postroom"]
    if config is not None:
        cmd += ["-c", str(config)]
    return subprocess.run(cmd + list(args), input=stdin, capture_output=True, text=True, timeout=60)


PORTS: dict[str, int] = {}


@pytest.fixture
def config_file(tmp_path) -> Path:
    """A config with every service on a free loopback port (recorded in PORTS)."""
    PORTS.update({s: free_port() for s in SERVICES})
    listen = "\n".join(f'{s} = ["127.0.0.1:{p}"]' for s, p in PORTS.items())
    path = tmp_path / "postroom.toml"
    path.write_text(f'hostname = "mx.cli.test"\ndata_dir = "{tmp_path}/data"\n[listen]\n{listen}\n')
    return path


@pytest.fixture
def serving(config_file):
    proc = subprocess.Popen(
        [sys.executable, "-m", "postroom", "-c", str(config_file), "serve"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        banner = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            banner.append(line)
            if "user add" in line:
                break
        proc.banner = "".join(banner)  # type: ignore[attr-defined]
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        proc.stderr.close()


def test_version():
    out = run("version")
    assert out.returncode == 0
    assert out.stdout.startswith("postroom ")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[limits]\nmesage_size = 1\n", "limits.mesage_size: unknown key"),
        ("[tls]\ncert = '/nope.pem'\nkey = '/nope.key'\n", "tls.cert: cannot read /nope.pem"),
        ("data_dir = 3\n", "data_dir: expected a string"),
    ],
)
def test_bad_config_is_one_line_exit_2(tmp_path, text, needle):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    out = run("serve", config=path)
    assert out.returncode == 2
    assert needle in out.stderr
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_admin_commands(config_file):
    out = run("domain", "add", "Example.TEST", config=config_file)
    assert out.returncode == 0 and "DKIM key" in out.stdout
    records = run("dns", "example.test", config=config_file).stdout
    assert "v=DKIM1" in records and "v=spf1" in records and "_dmarc.example.test" in records
    assert run("queue", "list", config=config_file).returncode == 0
    assert run("domain", "list", config=config_file).stdout.split() == ["example.test"]
    out = run(
        "user", "add", "Ann@example.test", "--password-stdin", config=config_file, stdin="pw1\n"
    )
    assert out.returncode == 0, out.stderr
    out = run(
        "user", "add", "bob@nothosted.test", "--password-stdin", config=config_file, stdin="x\n"
    )
    assert out.returncode == 2 and "not hosted" in out.stderr
    assert (
        run("alias", "add", "@example.test", "ann@example.test", config=config_file).returncode == 0
    )
    assert (
        run(
            "alias",
            "add",
            "info@example.test",
            "ann@example.test",
            "x@else.test",
            config=config_file,
        ).returncode
        == 0
    )
    aliases = run("alias", "list", config=config_file).stdout
    assert "@example.test\tann@example.test" in aliases
    assert "info@example.test\tann@example.test x@else.test" in aliases
    assert run("alias", "remove", "info@example.test", config=config_file).returncode == 0
    assert "info@" not in run("alias", "list", config=config_file).stdout
    users = run("user", "list", config=config_file).stdout
    assert users.startswith("ann@example.test\t0 messages")
    assert run("user", "quota", "ann@example.test", "1M", config=config_file).returncode == 0
    assert "/1048576 bytes" in run("user", "list", config=config_file).stdout
    out = run(
        "user", "passwd", "ann@example.test", "--password-stdin", config=config_file, stdin="pw2\n"
    )
    assert out.returncode == 0
    out = run("domain", "remove", "example.test", config=config_file)
    assert out.returncode == 2  # still has users and aliases
    assert run("user", "remove", "ann@example.test", config=config_file).returncode == 0
    assert run("alias", "remove", "@example.test", config=config_file).returncode == 0
    assert run("domain", "remove", "example.test", config=config_file).returncode == 0


def test_serve_banner_admin_while_running_and_sigterm(serving, config_file):
    ports = PORTS
    assert f"127.0.0.1:{ports['imap']}" in serving.banner
    assert "postroom -c" in serving.banner and "domain add" in serving.banner
    assert ("worker processes" in serving.banner) == ((os.cpu_count() or 1) > 1)
    # administration while the server runs, effective without restart
    assert run("domain", "add", "live.test", config=config_file).returncode == 0
    with smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=10) as client:
        code, _ = client.ehlo("client.test")
        assert code == 250
        client.mail("someone@elsewhere.test")
        code, _ = client.rcpt("nobody@live.test")
        assert code == 550  # the domain is hosted now; the user is unknown
    # SIGHUP re-reads the config: a new limit applies to the next session
    config_file.write_text(config_file.read_text() + "[limits]\nmessage_size = 100000\n")
    serving.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "reloaded" not in serving.stderr.readline() and time.monotonic() < deadline:
        pass
    assert serving.poll() is None
    with smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=10) as client:
        client.ehlo("client.test")
        assert int(client.esmtp_features["size"]) < 100000
    serving.send_signal(signal.SIGTERM)
    assert serving.wait(30) == 0
    rest = serving.stderr.read()
    assert "stopped" in rest


def test_default_ports_fall_back(tmp_path):
    from postroom import config
    from postroom.server import address_choices

    s = config.from_dict({"data_dir": str(tmp_path)})
    assert address_choices(s, "imaps") == [[("", 993)], [("", 2993)]]
    assert address_choices(s, "smtp") == [[("", 25)], [("", 2525)]]
    s = config.from_dict({"data_dir": str(tmp_path), "listen": {"pop3": []}})
    assert address_choices(s, "pop3") == [[]]


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
def test_root_binds_then_drops_to_the_configured_user():
    import pwd
    import shutil
    import tempfile

    nobody = pwd.getpwnam("nobody")
    top = tempfile.mkdtemp(prefix="postroom-priv-")
    os.chmod(top, 0o755)  # the unprivileged user must reach its data folder
    try:
        port, smtp_port = free_port(), free_port()
        path = Path(top) / "postroom.toml"
        listen = "\n".join(f"{s} = []" for s in SERVICES if s not in ("imap", "smtp"))
        path.write_text(
            f'user = "nobody"\ndata_dir = "{top}/data"\nsmtp_workers = 1\n[listen]\n'
            f'imap = ["127.0.0.1:{port}"]\nsmtp = ["127.0.0.1:{smtp_port}"]\n{listen}\n'
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "postroom", "-c", str(path), "serve"],
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            while "user add" not in (line := proc.stderr.readline()):
                assert line, "server exited early"
            status = Path(f"/proc/{proc.pid}/status").read_text()
            uid_line = next(x for x in status.splitlines() if x.startswith("Uid:"))
            assert uid_line.split()[1:] == [str(nobody.pw_uid)] * 4
            assert (Path(top) / "data" / "tls" / "key.pem").stat().st_uid == nobody.pw_uid
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                assert sock.recv(100).startswith(b"* OK")
            # the SMTP worker runs as the user too, and serves
            with socket.create_connection(("127.0.0.1", smtp_port), timeout=10) as sock:
                assert sock.recv(100).startswith(b"220 ")
            [worker] = [
                p.name
                for p in Path("/proc").iterdir()
                if p.name.isdigit() and f"PPid:\t{proc.pid}\n" in _status(p)
            ]
            status = Path(f"/proc/{worker}/status").read_text()
            uid_line = next(x for x in status.splitlines() if x.startswith("Uid:"))
            assert uid_line.split()[1:] == [str(nobody.pw_uid)] * 4
        finally:
            proc.terminate()
            assert proc.wait(30) == 0
            proc.stderr.close()
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _status(proc_dir: Path) -> str:
    try:
        return (proc_dir / "status").read_text()
    except OSError:  # gone meanwhile
        return ""
