#!/usr/bin/env python3
"""SMTP ingest: N concurrent sessions sending M messages (4 KiB and 100 KiB) over loopback
into postroom, and in the same run into its peers, printing messages/s and the ratios.

Peers (each skipped with the reason printed when it cannot run here):
  postfix   Postfix from a private configuration directory (``postfix -c DIR``, the system's
            configuration is never read or touched), delivering to a Maildir through virtual(8).
            Two rates: accepted into its queue (every 250 received; queue files are fsync'd) and
            delivered (every message in the Maildir).  postroom answers 250 only once the
            message is committed in the mailbox, so "delivered" is its like-for-like row.
  aiosmtpd  an aiosmtpd server that writes each message to a Maildir file and fsyncs it (and
            the directory) before answering 250: the ANCHORS.md row.

postroom runs as ``postroom serve`` runs it: on uvloop, logging at INFO (to DIR/server.log,
as Postfix logs to its maillog file).

The client is Postfix's smtp-source when installed (as in ANCHORS.md), else a small asyncio
client; it runs in its own process, every server in its own process.  By default each message
uses its own connection (smtp-source's default); ``--reuse`` keeps each session's connection.
Besides rates, each row gives the CPU time the server's processes used per message (user +
system, from /proc): on a shared machine it moves far less than the rates do.  postroom
indexes message text in the background after acknowledging (its backlog bounded); before
each row and before reading its CPU time the bench waits for that backlog to drain, so a row
neither inherits the previous row's indexing nor leaves its own out of its CPU figure.

    python bench/smtp_ingest.py                       # 1, 20, 100 sessions; 4 KiB and 100 KiB
    python bench/smtp_ingest.py --sessions 20 --messages 5000 --sizes 4096
    python bench/smtp_ingest.py --repeat 3            # medians of 3 runs, peers alternating
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from harness import free_port

DOMAIN = "example.test"
USER = f"alice@{DOMAIN}"
SENDER = "bench@remote.example"
PASSWORD = "bench password"


# -- peers, each a server in its own process -------------------------------------------------
class Peer:
    name = ""

    def start(self, root: Path) -> None: ...

    def stop(self) -> None: ...

    def stored(self) -> int:
        """Messages durably in the mailbox so far."""
        raise NotImplementedError

    def cpu(self) -> float | None:
        """CPU seconds (user + system) used by the server's processes so far."""
        return None

    def settle(self) -> None:
        """Wait until the server has finished its background work."""

    port = 0
    asynchronous = False  # 250 before final delivery (Postfix): wait for stored() too


class ChildPeer(Peer):
    """A server started as ``python smtp_ingest.py _serve-<name> DIR``; it prints "READY port",
    answers "COUNT" on stdin with the number of stored messages and "SETTLE" with "0" once
    its background work is done; EOF stops it."""

    def start(self, root: Path) -> None:
        folder = root / self.name
        folder.mkdir()
        with open(folder / "server.log", "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, __file__, f"_serve-{self.name}", str(folder)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if line[:1] != ["READY"]:
            raise RuntimeError(f"{self.name} did not start: {line}")
        self.port = int(line[1])

    def stored(self) -> int:
        return self._ask("COUNT")

    def settle(self) -> None:
        self._ask("SETTLE")

    def _ask(self, command: str) -> int:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def cpu(self) -> float | None:
        return tree_cpu(self.proc.pid)  # postroom's SMTP workers are its children

    def stop(self) -> None:
        proc = getattr(self, "proc", None)
        if proc is None:
            return
        try:
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait(timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()


class PostroomPeer(ChildPeer):
    name = "postroom"


class AiosmtpdPeer(ChildPeer):
    name = "aiosmtpd"

    @staticmethod
    def unavailable() -> str | None:
        try:
            import aiosmtpd  # noqa: F401
        except ImportError:
            return "aiosmtpd is not installed"
        return None


class PostfixPeer(Peer):
    """Postfix run from a private config directory, delivering to DIR/mail/<domain>/alice/."""

    name = "postfix"
    asynchronous = True

    @staticmethod
    def unavailable() -> str | None:
        if shutil.which("postfix") is None:
            return "postfix is not installed (Debian: apt-get install postfix)"
        if os.geteuid() != 0:
            return "postfix's master must start as root"
        try:
            pwd.getpwnam("postfix")
        except KeyError:
            return "no 'postfix' system user"
        return None

    def start(self, root: Path) -> None:
        base = root / "postfix"
        self.conf, spool, data, mail = (base / d for d in ("etc", "spool", "data", "mail"))
        for folder in (self.conf, spool, data, mail):
            folder.mkdir(parents=True)
        owner = pwd.getpwnam("postfix")
        os.chown(mail, owner.pw_uid, owner.pw_gid)
        os.chown(data, owner.pw_uid, owner.pw_gid)
        self.port = free_port()
        self.maildir = mail / DOMAIN / "alice"
        settings = {
            "compatibility_level": "3.6",
            "queue_directory": spool,
            "data_directory": data,
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": "postfix.bench.test",
            "mydomain": "bench.test",
            "mydestination": "",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "maillog_file": base / "maillog",
            "maillog_file_prefixes": base,
            "virtual_mailbox_domains": DOMAIN,
            "virtual_mailbox_base": mail,
            "virtual_mailbox_maps": f"static:{DOMAIN}/alice/",
            "virtual_uid_maps": f"static:{owner.pw_uid}",
            "virtual_gid_maps": f"static:{owner.pw_gid}",
            "virtual_minimum_uid": "1",
            "smtpd_client_connection_count_limit": "0",
            "default_process_limit": "200",
            "alias_maps": "",
            "alias_database": "",
            "biff": "no",
        }
        (self.conf / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
        (self.conf / "master.cf").write_text(self._master_cf())
        try:
            run(["postfix", "-c", str(self.conf), "start"])
        except RuntimeError as exc:  # postfix prints fatal errors to a tty or its log only
            log = base / "maillog"
            tail = log.read_text().splitlines()[-3:] if log.exists() else []
            raise RuntimeError(f"{exc} {' / '.join(tail)}") from None
        wait_for_port(self.port)

    def _master_cf(self) -> str:
        """Debian's master.cf without chroot, smtpd on our port."""
        out = []
        for line in Path("/etc/postfix/master.cf").read_text().splitlines():
            fields = line.split()
            if line[:1] in ("#", " ", "\t") or len(fields) < 8:
                out.append(line)
                continue
            if fields[0] == "smtp" and fields[1] == "inet":
                fields[0] = f"127.0.0.1:{self.port}"
            fields[4] = "n"
            out.append("  ".join(fields))
        return "\n".join(out) + "\n"

    def stored(self) -> int:
        return sum(
            len(os.listdir(self.maildir / sub))
            for sub in ("new", "cur")
            if (self.maildir / sub).is_dir()
        )

    def cpu(self) -> float | None:
        """The master and its live children; children that exited are in the master's
        cutime/cstime."""
        try:
            master = int((self.conf.parent / "data" / "master.lock").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return tree_cpu(master)

    def stop(self) -> None:
        if getattr(self, "conf", None) is not None:
            subprocess.run(["postfix", "-c", str(self.conf), "stop"], capture_output=True)


# -- the servers' entry points ----------------------------------------------------------------
def serve_postroom(folder: str) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from postroom import config, log
    from postroom.auth.passwords import hash_password, scram_secrets
    from postroom.memory import freeze_start_up_objects
    from postroom.server import Server

    settings = config.from_dict(
        {
            "hostname": "postroom.bench.test",
            "data_dir": folder,
            "log_level": "info",
            "listen": {
                "smtp": ["127.0.0.1:0"],
                **{s: [] for s in config.SERVICES if s != "smtp"},
            },
            "limits": {"connections_per_ip": 10_000},
            # unset: the default (one SMTP worker process per core)
            **({"smtp_workers": int(w)} if (w := os.environ.get("BENCH_SMTP_WORKERS")) else {}),
        }
    )

    log.setup(settings.log_level)

    async def main() -> None:
        server = Server(settings)
        await server.start()
        freeze_start_up_objects()  # as postroom serve does
        assert server.app is not None
        store = server.app.store
        await store.add_domain(DOMAIN)
        account = await store.create_account(USER, hash_password(PASSWORD), scram_secrets(PASSWORD))
        inbox = await store.get_mailbox(account.id, "INBOX")
        assert inbox is not None

        async def count() -> int:
            return (await store.status(inbox.id)).messages

        async def settle() -> int:
            """Until the text index has caught up (the store indexes in the background)."""
            await store.text_index_settled()
            return 0

        await child_loop(server.port("smtp"), count, settle)
        await server.stop(grace=5)

    run_loop(main())


def serve_aiosmtpd(folder: str) -> None:
    from aiosmtpd.smtp import SMTP

    maildir = Path(folder) / "Maildir"
    for sub in ("tmp", "new", "cur"):
        (maildir / sub).mkdir(parents=True)
    counter = iter(range(1, 1 << 62))
    host = socket.gethostname()

    def write(data: bytes) -> None:
        name = f"{time.time():.6f}.{os.getpid()}_{next(counter)}.{host}"
        tmp = maildir / "tmp" / name
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, maildir / "new" / name)
        dir_fd = os.open(maildir / "new", os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    class Handler:
        async def handle_RCPT(self, server, session, envelope, address, options):  # noqa: N802
            if address.lower() != USER:
                return "550 5.1.1 No such user"
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            data = f"Return-Path: <{envelope.mail_from}>\r\n".encode() + envelope.content
            await asyncio.get_running_loop().run_in_executor(None, write, data)
            return "250 OK"

    async def main() -> None:
        loop = asyncio.get_running_loop()
        handler = Handler()
        server = await loop.create_server(
            lambda: SMTP(handler, hostname="aiosmtpd.bench.test", data_size_limit=None),
            "127.0.0.1",
            0,
            backlog=1024,
        )
        port = server.sockets[0].getsockname()[1]

        async def count() -> int:
            return len(os.listdir(maildir / "new"))

        async def settle() -> int:
            return 0

        await child_loop(port, count, settle)
        server.close()

    run_loop(main())


async def child_loop(port: int, count, settle) -> None:  # noqa: ANN001
    """Tell the parent the port, then answer COUNT and SETTLE until stdin closes."""
    print(f"READY {port}", flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        print(await (settle() if line.strip() == "SETTLE" else count()), flush=True)


def run_loop(coro) -> None:  # noqa: ANN001
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(coro)


# -- clients ------------------------------------------------------------------------------------
def smtp_source(port: int, sessions: int, total: int, size: int, reuse: bool) -> list[str]:
    cmd = ["smtp-source", "-s", str(sessions), "-m", str(total), "-l", str(size)]
    cmd += ["-f", SENDER, "-t", USER]
    if reuse:
        cmd.append("-d")
    return [*cmd, f"127.0.0.1:{port}"]


async def python_client(port: int, sessions: int, total: int, size: int, reuse: bool) -> int:
    """A minimal SMTP client: EHLO, MAIL, RCPT, DATA, one reply at a time like smtp-source.
    Returns how many messages were refused."""
    body = make_body(size)
    remaining = [total]
    failures = [0]

    async def reply(reader: asyncio.StreamReader) -> bytes:
        while True:
            line = await reader.readline()
            if not line:
                raise ConnectionError("closed")
            if line[3:4] != b"-":
                return line

    async def worker() -> None:
        reader = writer = None
        while remaining[0] > 0:
            remaining[0] -= 1
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                await reply(reader)
                writer.write(b"EHLO client.bench.test\r\n")
                await reply(reader)
            assert reader is not None
            for line in (f"MAIL FROM:<{SENDER}>", f"RCPT TO:<{USER}>", "DATA"):
                writer.write(line.encode() + b"\r\n")
                await reply(reader)
            writer.write(body + b".\r\n")
            if not (await reply(reader)).startswith(b"250"):
                failures[0] += 1
            if not reuse:
                writer.write(b"QUIT\r\n")
                await reply(reader)
                writer.close()
                writer = None
        if writer is not None:
            writer.write(b"QUIT\r\n")
            writer.close()

    await asyncio.gather(*(worker() for _ in range(sessions)))
    return failures[0]


def make_body(size: int) -> bytes:
    head = (
        f"From: <{SENDER}>\r\nTo: <{USER}>\r\nSubject: bench\r\n"
        f"Message-ID: <{os.urandom(8).hex()}@bench.test>\r\n\r\n"
    ).encode()
    line = b"x" * 76 + b"\r\n"
    return head + line * max(1, (size - len(head)) // len(line))


# -- the run ------------------------------------------------------------------------------------
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (field 3 onwards)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def process_cpu(pid: int, children: bool = False) -> float | None:
    fields = _stat(pid)
    if fields is None:
        return None
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / _TICKS


def tree_cpu(pid: int) -> float | None:
    """A process and its live children; children that exited are in its cutime/cstime."""
    total = process_cpu(pid, children=True)
    if total is None:
        return None
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and parent_pid(int(entry.name)) == pid:
            total += process_cpu(int(entry.name)) or 0.0
    return total


def parent_pid(pid: int) -> int | None:
    fields = _stat(pid)
    return None if fields is None else int(fields[1])


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


def run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)}: {done.stderr.strip() or done.stdout.strip()}")


def measure(peer: Peer, sessions: int, total: int, size: int, reuse: bool, client: str):
    """Returns (accepted msg/s, stored msg/s, stored count increase, server CPU ms/message
    or None)."""
    peer.settle()
    before = peer.stored()
    cpu_before = peer.cpu()
    start = time.perf_counter()
    if client == "smtp-source":
        done = subprocess.run(
            smtp_source(peer.port, sessions, total, size, reuse), capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"smtp-source failed: {done.stderr.strip()[:300]}")
    else:
        refused = run_client(peer.port, sessions, total, size, reuse)
        if refused:
            raise RuntimeError(f"{refused} messages refused by {peer.name}")
    accepted = time.perf_counter() - start
    stored = peer.stored() - before
    deadline = time.monotonic() + 300
    while peer.asynchronous and stored < total and time.monotonic() < deadline:
        time.sleep(0.02)
        stored = peer.stored() - before
    elapsed = time.perf_counter() - start
    peer.settle()
    cpu_after = peer.cpu()
    cpu = None
    if cpu_before is not None and cpu_after is not None:
        cpu = (cpu_after - cpu_before) * 1000 / total
    return total / accepted, (total / elapsed if stored >= total else 0.0), stored, cpu


def median_row(rows: list[tuple[float, float, int, float | None]]):
    """The run with the median durable rate (a shared machine's speed drifts between runs)."""
    return sorted(rows, key=lambda row: row[1])[len(rows) // 2]


def run_client(port: int, sessions: int, total: int, size: int, reuse: bool) -> int:
    """The Python client in its own process, so it does not share the bench's interpreter."""
    code = (
        "import asyncio, sys; sys.path.insert(0, sys.argv[1]); import smtp_ingest as b;"
        "print(asyncio.run(b.python_client(*map(int, sys.argv[2:6]), sys.argv[6] == '1')))"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            str(Path(__file__).parent),
            str(port),
            str(sessions),
            str(total),
            str(size),
            "1" if reuse else "0",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout.strip())


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    if args_list[:1] == ["_serve-postroom"]:
        serve_postroom(args_list[1])
        return 0
    if args_list[:1] == ["_serve-aiosmtpd"]:
        serve_aiosmtpd(args_list[1])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", default="1,20,100", help="concurrent sessions, comma list")
    parser.add_argument("--messages", type=int, default=2000, help="messages per row")
    parser.add_argument("--sizes", default="4096,102400", help="message sizes in bytes")
    parser.add_argument("--peers", default="postroom,postfix,aiosmtpd")
    parser.add_argument("--reuse", action="store_true", help="keep connections open")
    parser.add_argument("--client", choices=("auto", "smtp-source", "python"), default="auto")
    parser.add_argument(
        "--smtp-workers", type=int, help="postroom's smtp_workers (default: its own default)"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="measure each row this many times, peers alternating; report the medians",
    )
    args = parser.parse_args(args_list)
    if args.smtp_workers is not None:
        os.environ["BENCH_SMTP_WORKERS"] = str(args.smtp_workers)  # read by _serve-postroom
    client = args.client
    if client == "auto":
        client = "smtp-source" if shutil.which("smtp-source") else "python"
    print("reproduce: python bench/smtp_ingest.py " + shlex.join(args_list), flush=True)
    print(
        f"client: {client}; {'persistent sessions' if args.reuse else 'one connection per message'}"
    )
    peers: list[Peer] = []
    for name in args.peers.split(","):
        cls = {"postroom": PostroomPeer, "postfix": PostfixPeer, "aiosmtpd": AiosmtpdPeer}[name]
        reason = getattr(cls, "unavailable", lambda: None)()
        if reason:
            print(f"peer {name} skipped: {reason}")
        else:
            peers.append(cls())
    results: dict[tuple[str, int, int], tuple[float, float, int, float | None]] = {}
    with running(peers, "smtp-bench-"):
        for size in map(int, args.sizes.split(",")):
            for sessions in map(int, args.sessions.split(",")):
                runs: dict[str, list[tuple[float, float, int, float | None]]] = {}
                for _ in range(args.repeat):
                    for peer in peers:
                        row = measure(peer, sessions, args.messages, size, args.reuse, client)
                        runs.setdefault(peer.name, []).append(row)
                for peer in peers:
                    row = median_row(runs[peer.name])
                    results[(peer.name, size, sessions)] = row
                    cpu = "   -" if row[3] is None else f"{row[3]:4.2f}"
                    spread = ""
                    if args.repeat > 1:
                        spread = " (runs: " + ", ".join(f"{r[1]:.0f}" for r in runs[peer.name])
                        spread += ")"
                    print(
                        f"{peer.name:9} {size // 1024:4d} KiB {sessions:4d} sessions: "
                        f"accepted {row[0]:7.1f} msg/s, in mailbox {row[1]:7.1f} msg/s"
                        f" ({row[2]} stored), server CPU {cpu} ms/msg{spread}",
                        flush=True,
                    )
    report(results, [p.name for p in peers])
    print("reproduce: python bench/smtp_ingest.py " + shlex.join(args_list))
    return 0


@contextlib.contextmanager
def running(peers: list[Peer], prefix: str) -> Iterator[None]:
    """The peers started in a temporary folder, and stopped at the end."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        os.chmod(tmp, 0o755)  # postfix's unprivileged processes walk into it
        try:
            for peer in peers:
                peer.start(Path(tmp))
            yield
        finally:
            for peer in peers:
                peer.stop()


def report(
    results: dict[tuple[str, int, int], tuple[float, float, int, float | None]], names: list[str]
) -> None:
    if "postroom" not in names:
        return
    print("\nratios (postroom durable-in-mailbox rate / peer rate):")
    for (name, size, sessions), (accepted, durable, _, _) in sorted(results.items()):
        if name == "postroom":
            continue
        ours = results[("postroom", size, sessions)][1]
        parts = []
        if durable:
            parts.append(f"{ours / durable:.2f}x vs {name} in mailbox")
        if name == "postfix":
            parts.append(f"{ours / accepted:.2f}x vs {name} queued")
        print(f"  {size // 1024:4d} KiB {sessions:4d} sessions: " + ", ".join(parts))


if __name__ == "__main__":
    raise SystemExit(main())
