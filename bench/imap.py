"""IMAP over IMAPS on a large mailbox: postroom beside Dovecot, same run (ANCHORS.md rows).

    python bench/imap.py [--messages 10000] [--runs 5]

postroom runs in a child process (as ``postroom serve`` would, uvloop when installed) with its
INBOX filled through the store (fast: concurrent appends, group commit), measured once its
text index (built in the background after each delivery) has caught up.  Dovecot, when
installed, runs from a temporary config dir with the same messages written into a Maildir
(so its first SELECT builds its index: the "cold" figure).  One client (this process) times,
for each server, the median of ``--runs`` runs of: LOGIN, SELECT, UID FETCH 1:* (UID FLAGS),
UID SEARCH UNSEEN, UID SEARCH SUBJECT word, SEARCH TEXT rare word, FETCH 1,000 x ENVELOPE,
UID STORE 1,000 UIDs +FLAGS / -FLAGS, UID SORT (REVERSE DATE) and (SUBJECT) over the whole
mailbox, UID THREAD REFERENCES.  Results are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import pwd
import random
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import free_port, start_with_account, use_uvloop

USER = "bench@example.test"
PASSWORD = "bench password 1"

RARE = "xylophonist"  # in exactly one message body
WORD = "quarterly"  # in about one subject in ten
VOCABULARY = [
    "the",
    "mail",
    "server",
    "queue",
    "message",
    "report",
    "meeting",
    "project",
    "budget",
    "team",
    "review",
    "draft",
    "plan",
    "customer",
    "invoice",
    "update",
    "schedule",
    "release",
    "notes",
    "question",
    "answer",
    "weekly",
    "status",
    "alpha",
    "beta",
    "gamma",
    "delta",
    "network",
    "storage",
    "index",
    "search",
    "folder",
    "client",
]


def message(i: int, count: int) -> tuple[bytes, bool]:
    """A deterministic 2-50 KB message (text, sometimes with an attachment) and whether it
    is seen (about 70 %); message ``count // 2`` alone carries the rare word."""
    rng = random.Random(i)
    subject = " ".join(rng.choice(VOCABULARY) for _ in range(rng.randint(3, 8)))
    if i % 10 == 3:
        subject += f" {WORD}"
    target = int(min(50_000, max(2_000, rng.lognormvariate(8.9, 0.8))))
    lines: list[str] = []
    size = 0
    while size < target:
        line = " ".join(rng.choice(VOCABULARY) for _ in range(rng.randint(4, 14)))
        lines.append(line)
        size += len(line) + 2
    head = (
        f"From: Sender {i % 97} <sender{i % 97}@example.net>\r\n"
        f"To: {USER}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{i}.bench@example.net>\r\n"
        f"Date: Mon, 01 Jan 2024 {i % 24:02d}:{i % 60:02d}:00 +0000\r\nMIME-Version: 1.0\r\n"
    )
    body = "\r\n".join(lines) + "\r\n"
    if i == count // 2:
        body = f"{RARE}\r\n" + body
    if i % 5 == 0:
        data = (
            head + 'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
            "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body[: len(body) // 2]
            + "\r\n--b\r\nContent-Type: application/octet-stream\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n"
            + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=\r\n" * (len(body) // 74)
            + "--b--\r\n"
        )  # fmt: skip
    else:
        data = head + "Content-Type: text/plain; charset=utf-8\r\n\r\n" + body
    return data.encode(), rng.random() < 0.7


# -- the client ------------------------------------------------------------------------------
class Client:
    """A minimal IMAPS client: sends a command, reads until its tagged response."""

    def __init__(self, port: int) -> None:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.sock = self._connect(ctx, port)
        self.sock.settimeout(600)
        self.buf = bytearray()
        self.n = 0
        self._read_until(b"\r\n", 0)

    handshake_retries = 0

    @classmethod
    def _connect(cls, ctx: ssl.SSLContext, port: int) -> ssl.SSLSocket:
        """Connect and handshake, retrying a handshake that stalls (see the printed count)."""
        for _ in range(10):
            raw = socket.create_connection(("127.0.0.1", port), timeout=5)
            # Let the server reach its TLS handshake before the ClientHello arrives: the
            # shared listener can lose a ClientHello that races it (reported to the lead).
            time.sleep(0.05)
            try:
                return ctx.wrap_socket(raw)
            except (OSError, ssl.SSLError):
                raw.close()
                cls.handshake_retries += 1
        raise ConnectionError("TLS handshake keeps failing")

    def _read_until(self, needle: bytes, start: int) -> int:
        while (idx := self.buf.find(needle, start)) < 0:
            start = max(0, len(self.buf) - len(needle))
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buf += chunk
        return idx

    def command(self, text: str) -> tuple[bytes, int]:
        """Returns the tagged line and the number of untagged lines before it."""
        self.n += 1
        tag = b"b%d " % self.n
        self.sock.sendall(tag + text.encode() + b"\r\n")
        idx = 0 if self.buf.startswith(tag) else self._read_until(b"\r\n" + tag, 0) + 2
        end = self._read_until(b"\r\n", idx)
        line = bytes(self.buf[idx:end])
        untagged = self.buf.count(b"\r\n* ", 0, idx) + (1 if self.buf.startswith(b"* ") else 0)
        del self.buf[: end + 2]
        if not line.startswith(tag + b"OK"):
            raise RuntimeError(f"{text[:60]!r} -> {line[:200]!r}")
        return line, untagged

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, ConnectionError, OSError):
            self.command("LOGOUT")
        self.sock.close()


def timed(client: Client, text: str) -> tuple[float, int]:
    start = time.perf_counter()
    _, count = client.command(text)
    return (time.perf_counter() - start) * 1000, count


ROWS = (
    "LOGIN",
    "SELECT (first, cold)",
    "SELECT",
    "UID FETCH 1:* (UID FLAGS)",
    "UID SEARCH UNSEEN",
    "UID SEARCH SUBJECT word",
    "SEARCH TEXT rare word",
    "FETCH 1,000 x ENVELOPE",
    "UID STORE 1,000 +FLAGS",
    "UID STORE 1,000 -FLAGS",
    "UID SORT (REVERSE DATE) ALL",
    "UID SORT (SUBJECT) ALL",
    "UID THREAD REFERENCES ALL",
)


def measure(name: str, port: int, count: int, runs: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {row: [] for row in ROWS}
    counts: dict[str, int] = {}
    rng = random.Random(7)
    for run in range(runs):
        client = Client(port)
        ms, _ = timed(client, f'LOGIN "{USER}" "{PASSWORD}"')
        samples["LOGIN"].append(ms)
        ms, _ = timed(client, "SELECT INBOX")
        samples["SELECT (first, cold)" if run == 0 else "SELECT"].append(ms)
        for row, cmd in (
            ("UID FETCH 1:* (UID FLAGS)", "UID FETCH 1:* (UID FLAGS)"),
            ("UID SEARCH UNSEEN", "UID SEARCH UNSEEN"),
            ("UID SEARCH SUBJECT word", f"UID SEARCH SUBJECT {WORD}"),
            ("SEARCH TEXT rare word", f"SEARCH TEXT {RARE}"),
        ):
            ms, n = timed(client, cmd)
            samples[row].append(ms)
            counts[row] = n
        first = rng.randint(1, max(1, count - 999))
        last = min(count, first + 999)
        ms, counts["FETCH 1,000 x ENVELOPE"] = timed(client, f"FETCH {first}:{last} (ENVELOPE)")
        samples["FETCH 1,000 x ENVELOPE"].append(ms)
        ms, _ = timed(client, f"UID STORE {first}:{last} +FLAGS (\\Flagged)")
        samples["UID STORE 1,000 +FLAGS"].append(ms)
        ms, _ = timed(client, f"UID STORE {first}:{last} -FLAGS (\\Flagged)")
        samples["UID STORE 1,000 -FLAGS"].append(ms)
        for row in ("UID SORT (REVERSE DATE) ALL", "UID SORT (SUBJECT) ALL"):
            ms, _ = timed(client, row.replace(") ALL", ") UTF-8 ALL"))
            samples[row].append(ms)
        ms, _ = timed(client, "UID THREAD REFERENCES UTF-8 ALL")
        samples["UID THREAD REFERENCES ALL"].append(ms)
        client.close()
    if counts.get("UID FETCH 1:* (UID FLAGS)") != count:
        print(
            f"  {name}: warning: UID FETCH returned {counts.get('UID FETCH 1:* (UID FLAGS)')} lines"
        )
    print(f"  {name}: SEARCH TEXT found {counts['SEARCH TEXT rare word']} line(s)")
    return {row: statistics.median(v) for row, v in samples.items() if v}


# -- postroom --------------------------------------------------------------------------------
def serve_postroom(data_dir: str, count: int) -> None:
    """Child process: fill the store, serve IMAPS, print the port, stop on stdin EOF."""
    use_uvloop()
    port = free_port()

    async def run() -> None:
        server, store, inbox = await start_with_account(data_dir, {"imaps": port}, USER, PASSWORD)
        start = time.perf_counter()
        for first in range(0, count, 200):
            batch = [message(i, count) for i in range(first, min(first + 200, count))]
            await asyncio.gather(
                *(store.append(inbox.id, d, ["\\Seen"] if seen else []) for d, seen in batch)
            )
        await store.claim_recent(inbox.id)
        filled = time.perf_counter() - start
        # Measure searches in the steady state, as Dovecot's: once the text index (built in
        # the background after each delivery) has caught up with the fill.
        await store.text_index_settled()
        print(f"FILLED {filled:.1f} INDEXED {time.perf_counter() - start:.1f}", flush=True)
        print(f"PORT {port} {server.app.tls.cert_path} {server.app.tls.key_path}", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        await server.stop(grace=5)

    asyncio.run(run())


def start_postroom(
    tmp: Path, count: int
) -> tuple[subprocess.Popen[str], int, float, float, str, str]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(tmp / "postroom"), "--messages", str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    _, filled, _, indexed = proc.stdout.readline().split()
    _, port, cert, key = proc.stdout.readline().split()
    return proc, int(port), float(filled), float(indexed), cert, key


# -- Dovecot ---------------------------------------------------------------------------------
DOVECOT_CONF = """\
base_dir = {tmp}/run
state_dir = {tmp}/state
log_path = {tmp}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
auth_mechanisms = plain
mail_location = maildir:~/Maildir
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
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {port}
    ssl = yes
  }}
}}
"""


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def start_dovecot(tmp: Path, count: int, cert: str, key: str):  # noqa: ANN201
    binary = shutil.which("dovecot") or (
        "/usr/sbin/dovecot" if os.path.exists("/usr/sbin/dovecot") else None
    )
    if binary is None:
        return "not installed (command -v dovecot found nothing)"
    root = tmp / "dovecot"
    maildir = root / "home" / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    now = int(time.time())
    for i in range(count):
        data, seen = message(i, count)
        stored = data.replace(b"\r\n", b"\n")
        name = f"{now}.M{i}P1.bench,S={len(stored)},W={len(data)}:2,{'S' if seen else ''}"
        (maildir / "cur" / name).write_bytes(stored)
    (root / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    tls = root / "tls"
    tls.mkdir()
    shutil.copy(cert, tls / "cert.pem")
    shutil.copy(key, tls / "key.pem")
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
            cert=tls / "cert.pem",
            key=tls / "key.pem",
            login_user=login_user,
            internal_user=internal_user,
        )  # fmt: skip
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
    return f"did not start: {log.read_text()[-1000:] if log.exists() else '?'}"


# -- main ------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_postroom(args.serve, args.messages)
        return
    print(f"$ python bench/imap.py --messages {args.messages} --runs {args.runs}")
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, median of {args.runs} runs, ms")
    with tempfile.TemporaryDirectory(prefix="postroom-bench-") as name:
        tmp = Path(name)
        os.chmod(tmp, 0o755)  # Dovecot's unprivileged processes walk into it
        proc, port, filled, indexed, cert, key = start_postroom(tmp, args.messages)
        try:
            print(f"postroom: {args.messages} messages stored in {filled:.1f} s "
                  f"({args.messages / filled:.0f} msg/s through the store), "
                  f"text index complete after {indexed:.1f} s")  # fmt: skip
            ours = measure("postroom", port, args.messages, args.runs)
        finally:
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait(60)
        dovecot = start_dovecot(tmp, args.messages, cert, key)
        theirs: dict[str, float] = {}
        if isinstance(dovecot, str):
            print(f"dovecot: peer skipped: {dovecot}")
        else:
            dproc, dport = dovecot
            try:
                theirs = measure("dovecot", dport, args.messages, args.runs)
            finally:
                dproc.terminate()
                dproc.wait(30)
        print(f"{'operation':28} {'postroom':>10} {'dovecot':>10} {'ratio':>7}")
        for row in ROWS:
            a = ours.get(row)
            b = theirs.get(row)
            ratio = f"{a / b:7.2f}" if a is not None and b else "      -"
            print(
                f"{row:28} {a if a is not None else float('nan'):10.1f} "
                f"{b if b is not None else float('nan'):10.1f} {ratio}"
            )
        if theirs:
            print("ratio = postroom time / dovecot time (below 1: postroom is faster)")
        if Client.handshake_retries:
            print(f"note: {Client.handshake_retries} TLS handshake(s) stalled and were retried")


if __name__ == "__main__":
    main()
