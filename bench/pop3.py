"""POP3 RETR throughput on a 10,000-message maildrop: postroom beside Dovecot, same run.

    python bench/pop3.py [--messages 10000] [--window 64]

postroom runs in a child process (as ``postroom serve`` would, uvloop when installed) with its
INBOX filled through the store; Dovecot, when installed, runs from a temporary config dir
with the same messages in a Maildir (named with S= and W= sizes, as Dovecot's own delivery
writes them).  One client (this process) logs in, then retrieves every message twice: once
command by command (the first pass also sets \\Seen on both servers) and once pipelined
(RFC 2449 PIPELINING, ``--window`` commands in flight); then logs in once more (the first
login pays the password hash, the second shows the maildrop snapshot).  Results are printed,
never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pwd
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import free_port, start_with_account, use_uvloop

USER = "bench@example.test"
PASSWORD = "bench password 1"


def _vocabulary() -> list[str]:
    rng = random.Random(0)
    words = ["alpha", "beta", "gamma", "delta", "mail", "server", "queue", "message", "."]
    return [" ".join(rng.choices(words, k=rng.randint(1, 14))) for _ in range(4096)]


LINES = _vocabulary()


def message(i: int) -> bytes:
    """A deterministic message of 1-20 KiB (about 5 KiB on average), some lines starting
    with a dot."""
    rng = random.Random(i)
    header = [
        f"From: Sender {i % 97} <sender{i % 97}@example.net>",
        f"To: {USER}",
        f"Subject: benchmark message {i}",
        f"Message-ID: <{i}.bench@example.net>",
        "Date: Mon, 01 Jan 2024 00:00:00 +0000",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "",
    ]
    size = min(max(int(rng.lognormvariate(8.3, 0.6)), 1024), 20480)
    first = rng.randrange(len(LINES) // 2)
    body, octets = [], 0
    for line in LINES[first:]:
        if octets >= size:
            break
        body.append(line)
        octets += len(line) + 2
    return ("\r\n".join(header + body) + "\r\n").encode()


# -- the client ------------------------------------------------------------------------------
class Client:
    """A minimal pipelining POP3 client that counts bytes rather than parsing messages."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.buf = bytearray()
        self.expect_ok()

    def _fill(self) -> None:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buf += chunk

    def line(self) -> bytes:
        while (end := self.buf.find(b"\r\n")) < 0:
            self._fill()
        line = bytes(self.buf[:end])
        del self.buf[: end + 2]
        return line

    def expect_ok(self) -> bytes:
        line = self.line()
        if not line.startswith(b"+OK"):
            raise RuntimeError(f"unexpected reply {line[:200]!r}")
        return line

    def body(self) -> int:
        """Skip one multi-line body; its length."""
        if self.buf.startswith(b".\r\n"):
            del self.buf[:3]
            return 0
        start = 0
        while (end := self.buf.find(b"\r\n.\r\n", start)) < 0:
            start = max(0, len(self.buf) - 4)
            self._fill()
        del self.buf[: end + 5]
        return end + 2

    def command(self, text: str) -> bytes:
        self.sock.sendall(text.encode() + b"\r\n")
        return self.expect_ok()

    def retr_all(self, count: int, window: int) -> int:
        """RETR 1..count with up to ``window`` commands outstanding; octets received."""
        sent = received = total = 0
        while received < count:
            batch = []
            while sent < count and sent - received < window:
                sent += 1
                batch.append(f"RETR {sent}\r\n".encode())
            if batch:
                self.sock.sendall(b"".join(batch))
            self.expect_ok()
            total += self.body()
            received += 1
        return total

    def close(self) -> None:
        self.command("QUIT")
        self.sock.close()


def measure(name: str, port: int, count: int, window: int) -> dict[str, float]:
    client = Client(port)
    client.command(f"USER {USER}")
    start = time.perf_counter()
    reply = client.command(f"PASS {PASSWORD}")
    login = time.perf_counter() - start
    stat = client.command("STAT").split()
    if int(stat[1]) != count:
        raise RuntimeError(f"{name}: maildrop has {stat[1]} messages, expected {count}: {reply!r}")
    results = {"login": login}
    for label, w in (("sequential", 1), ("pipelined", window)):
        start = time.perf_counter()
        octets = client.retr_all(count, w)
        elapsed = time.perf_counter() - start
        results[label] = count / elapsed
        results[label + "_mb"] = octets / elapsed / 1e6
    client.close()
    # A second session: the maildrop snapshot again, after a first password check.
    client = Client(port)
    client.command(f"USER {USER}")
    start = time.perf_counter()
    client.command(f"PASS {PASSWORD}")
    results["relogin"] = time.perf_counter() - start
    client.close()
    return results


# -- postroom --------------------------------------------------------------------------------
def serve_postroom(data_dir: str, count: int) -> None:
    """Child process: fill the store, serve POP3, print the port, stop on stdin EOF."""
    use_uvloop()
    port = free_port()

    async def run() -> None:
        server, store, inbox = await start_with_account(
            data_dir, {"pop3": port}, USER, PASSWORD, auth={"allow_plaintext": True}
        )
        start = time.perf_counter()
        for first in range(0, count, 200):
            batch = range(first, min(first + 200, count))
            await asyncio.gather(*(store.append(inbox.id, message(i)) for i in batch))
        print(f"FILLED {time.perf_counter() - start:.1f}", flush=True)
        print(f"PORT {port}", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        await server.stop(grace=5)

    asyncio.run(run())


def start_postroom(tmp: Path, count: int) -> tuple[subprocess.Popen[str], int, float]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(tmp / "postroom"), "--messages", str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    filled = float(proc.stdout.readline().split()[1])
    port = int(proc.stdout.readline().split()[1])
    return proc, port, filled


# -- Dovecot ---------------------------------------------------------------------------------
DOVECOT_CONF = """\
base_dir = {tmp}/run
state_dir = {tmp}/state
log_path = {tmp}/dovecot.log
protocols = pop3
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
mail_location = maildir:~/Maildir
pop3_uidl_format = %08Xu%08Xv
default_login_user = {login_user}
default_internal_user = {internal_user}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {tmp}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={tmp}/home
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
"""


def start_dovecot(tmp: Path, count: int) -> tuple[subprocess.Popen[bytes], int] | None:
    binary = shutil.which("dovecot") or (
        "/usr/sbin/dovecot" if os.path.exists("/usr/sbin/dovecot") else None
    )
    if binary is None:
        return None
    root = tmp / "dovecot"
    maildir = root / "home" / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    now = int(time.time())
    for i in range(count):
        data = message(i)
        stored = data.replace(b"\r\n", b"\n")
        name = f"{now}.M{i}P1.bench,S={len(stored)},W={len(data)}:2,"
        (maildir / "cur" / name).write_bytes(stored)
    (root / "passwd").write_text(f"{USER}:{dovecot_hash(binary)}\n")
    # Mail processes may not run as root: the maildrop belongs to an unprivileged user.
    owner = pwd.getpwnam("nobody") if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())
    if os.geteuid() == 0:
        for path in [root / "home", *(root / "home").rglob("*")]:
            os.chown(path, owner.pw_uid, owner.pw_gid)
    login_user = "dovenull" if _user_exists("dovenull") else owner.pw_name
    internal_user = "dovecot" if _user_exists("dovecot") else owner.pw_name
    port = free_port()
    conf = root / "dovecot.conf"
    conf.write_text(
        DOVECOT_CONF.format(
            tmp=root,
            uid=owner.pw_uid,
            gid=owner.pw_gid,
            port=port,
            login_user=login_user,
            internal_user=internal_user,
        )
    )
    proc = subprocess.Popen([binary, "-F", "-c", str(conf)])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    proc.terminate()
    log = root / "dovecot.log"
    print(f"dovecot did not start: {log.read_text()[-2000:] if log.exists() else '?'}")
    return None


def dovecot_hash(binary: str) -> str:
    """argon2id like postroom's, so both logins cost a password verification of the same
    kind; plaintext when this Dovecot cannot make one."""
    doveadm = Path(binary).with_name("doveadm")
    if not doveadm.exists():
        doveadm = Path(shutil.which("doveadm") or "doveadm")
    try:
        out = subprocess.run(
            [str(doveadm), "pw", "-s", "ARGON2ID", "-p", PASSWORD],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except OSError:
        out = None
    if out is not None and out.returncode == 0 and out.stdout.startswith("{ARGON2ID}"):
        return out.stdout.strip()
    print("dovecot: no ARGON2ID scheme, using a plaintext password")
    return f"{{PLAIN}}{PASSWORD}"


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


# -- main ------------------------------------------------------------------------------------
def report(name: str, r: dict[str, float]) -> None:
    print(
        f"{name:9} login {r['login'] * 1000:6.1f} ms, again {r['relogin'] * 1000:6.1f} ms | "
        f"sequential {r['sequential']:8.0f} msg/s {r['sequential_mb']:6.1f} MB/s | "
        f"pipelined {r['pipelined']:8.0f} msg/s {r['pipelined_mb']:6.1f} MB/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_postroom(args.serve, args.messages)
        return
    print(f"$ python bench/pop3.py --messages {args.messages} --window {args.window}")
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="postroom-bench-") as name:
        tmp = Path(name)
        os.chmod(tmp, 0o755)  # Dovecot's unprivileged processes walk into it
        proc, port, filled = start_postroom(tmp, args.messages)
        try:
            print(f"postroom: {args.messages} messages stored in {filled:.1f} s")
            ours = measure("postroom", port, args.messages, args.window)
        finally:
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait(60)
        report("postroom", ours)
        dovecot = start_dovecot(tmp, args.messages)
        if dovecot is None:
            print("dovecot: not installed (or did not start), peer skipped")
            return
        dproc, dport = dovecot
        try:
            theirs = measure("dovecot", dport, args.messages, args.window)
        finally:
            dproc.terminate()
            dproc.wait(30)
        report("dovecot", theirs)
        for label in ("sequential", "pipelined"):
            print(f"ratio postroom/dovecot {label}: {ours[label] / theirs[label]:.2f}")
        print(f"ratio postroom/dovecot login time: {ours['login'] / theirs['login']:.2f}")
        print(
            f"ratio postroom/dovecot second login time: {ours['relogin'] / theirs['relogin']:.2f}"
        )


if __name__ == "__main__":
    main()
