"""Outbound throughput: messages per second from a full queue to an SMTP sink on loopback.

postroom: N messages are queued (durably) first, then the delivery worker is started and timed
until the sink has received all of them.  Postfix, when installed (and we are root), runs in the
same way in the same run: a private instance (own config and queue folders, loopback ports only)
relays to the same kind of sink; its queue is filled with delivery on hold, then released.

The sink runs in a child process, so the timed side has the process to itself.

    python bench/queue_out.py [--messages 2000] [--size 4096]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()


# -- the sink (child process) -------------------------------------------------------------------


def sink_main(expected: int) -> None:
    """Accept mail on an ephemeral port; print the port, then "done" after ``expected``."""
    from aiosmtpd.smtp import SMTP

    class Counter:
        count = 0

        async def handle_DATA(self, server, session, envelope):
            self.count += len(envelope.rcpt_tos)
            if self.count >= expected:
                print("done", flush=True)
            return "250 2.0.0 ok"

    async def run() -> None:
        handler = Counter()
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(handler, hostname="sink.bench.test"), "127.0.0.1", 0
        )
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Event().wait()

    asyncio.run(run())


class Sink:
    def __init__(self, expected: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE), "--sink", str(expected)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def wait_done(self) -> float:
        """Block until the sink has everything; returns the time it said so."""
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != "done":
            raise RuntimeError(f"sink stopped early: {line!r}")
        return time.perf_counter()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def message(i: int, size: int) -> bytes:
    head = (
        f"From: bench@postroom.test\r\nTo: rcpt{i}@bench.test\r\nSubject: bench {i}\r\n"
        f"Message-ID: <{i}.bench@postroom.test>\r\n\r\n"
    ).encode()
    line = b"x" * 76 + b"\r\n"
    return head + line * max(1, (size - len(head)) // len(line))


# -- postroom -----------------------------------------------------------------------------------


async def run_postroom(n: int, size: int, workdir: Path) -> tuple[float, float]:
    from postroom import config
    from postroom.outbound.queue import OutboundRecipient
    from postroom.outbound.worker import Outbound
    from postroom.store.sqlite import SqliteStore

    sink = Sink(n)
    try:
        settings = config.from_dict(
            {
                "hostname": "bench.postroom.test",
                "data_dir": str(workdir / "postroom"),
                "relay": {"routes": {"bench.test": f"127.0.0.1:{sink.port}"}},
            }
        )
        store = SqliteStore(settings.data_path)
        await store.open()
        ob = Outbound(settings, store)
        await ob.open()
        try:
            t0 = time.perf_counter()
            await asyncio.gather(
                *(
                    ob.submit(
                        "bench@postroom.test",
                        [OutboundRecipient(f"rcpt{i}@bench.test")],
                        message(i, size),
                    )
                    for i in range(n)
                )
            )
            enqueue_rate = n / (time.perf_counter() - t0)
            start = time.perf_counter()
            worker = asyncio.create_task(ob.run())
            end = await asyncio.to_thread(sink.wait_done)
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
        finally:
            await ob.close()
            await store.close()
        return enqueue_rate, n / (end - start)
    finally:
        sink.stop()


# -- postfix ------------------------------------------------------------------------------------


def postfix_unavailable() -> str | None:
    if shutil.which("postfix") is None:
        return "not installed (`command -v postfix` found nothing)"
    if os.geteuid() != 0:
        return "postfix must be started as root"
    return None


MASTER_CF = """\
{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_postfix(n: int, size: int, workdir: Path) -> float:
    import pwd

    conf, spool, data = (workdir / d for d in ("postfix-conf", "postfix-spool", "postfix-data"))
    for folder in (conf, spool, data):
        folder.mkdir()
    owner = pwd.getpwnam("postfix")
    os.chown(data, owner.pw_uid, owner.pw_gid)
    port = _free_port()
    sink = Sink(n)
    try:
        (conf / "master.cf").write_text(MASTER_CF.format(port=f"127.0.0.1:{port}"))
        (conf / "main.cf").write_text(
            "\n".join(
                [
                    "compatibility_level = 3.6",
                    f"queue_directory = {spool}",
                    f"data_directory = {data}",
                    "mail_owner = postfix",
                    "setgid_group = postdrop",
                    "inet_interfaces = 127.0.0.1",
                    "inet_protocols = ipv4",
                    "myhostname = bench.postfix.test",
                    "mydestination =",
                    "mynetworks = 127.0.0.0/8",
                    f"relayhost = [127.0.0.1]:{sink.port}",
                    "smtp_tls_security_level = none",
                    "defer_transports = smtp relay",  # fill the queue first, release it timed
                    f"maillog_file_prefixes = {workdir}",
                    f"maillog_file = {workdir / 'postfix.log'}",
                    "default_destination_concurrency_limit = 4",  # = postroom's per destination
                    "",
                ]
            )
        )
        env = {**os.environ, "MAIL_CONFIG": str(conf)}

        def run(*cmd: str) -> None:
            subprocess.run(cmd, check=True, env=env, capture_output=True, text=True)

        run("postfix", "-c", str(conf), "start")
        try:
            client = smtplib.SMTP("127.0.0.1", port, timeout=60)
            for i in range(n):
                client.sendmail("bench@postroom.test", [f"rcpt{i}@bench.test"], message(i, size))
            client.quit()
            deadline = time.monotonic() + 120
            while _postfix_queue_size(env) < n:  # every message committed to the queue
                if time.monotonic() > deadline:
                    raise RuntimeError("postfix did not queue every message")
                time.sleep(0.1)
            run("postconf", "-c", str(conf), "-e", "defer_transports =")
            start = time.perf_counter()
            run("postfix", "-c", str(conf), "reload")
            run("postqueue", "-c", str(conf), "-f")
            end = sink.wait_done()
            return n / (end - start)
        finally:
            subprocess.run(["postfix", "-c", str(conf), "stop"], env=env, capture_output=True)
    finally:
        sink.stop()


def _postfix_queue_size(env: dict[str, str]) -> int:
    out = subprocess.run(
        ["postqueue", "-c", env["MAIL_CONFIG"], "-j"], env=env, capture_output=True, text=True
    ).stdout
    return len([line for line in out.splitlines() if line.strip()])


# -- main ---------------------------------------------------------------------------------------


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=2000)
    p.add_argument("--size", type=int, default=4096, help="bytes per message")
    p.add_argument("--sink", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.sink is not None:
        sink_main(args.sink)
        return 0
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(f"command: python bench/queue_out.py --messages {args.messages} --size {args.size}")
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="postroom-bench-") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o755)
        enqueue_rate, rate = asyncio.run(run_postroom(args.messages, args.size, work))
        print(f"postroom: {enqueue_rate:8.0f} msg/s queued (durable), {rate:8.0f} msg/s delivered")
        reason = postfix_unavailable()
        if reason is not None:
            print(f"postfix:  skipped: {reason}")
            return 0
        try:
            peer = run_postfix(args.messages, args.size, work)
        except (subprocess.CalledProcessError, RuntimeError, OSError) as exc:
            detail = " ".join(str(getattr(exc, "stderr", None) or exc).split())
            print(f"postfix:  skipped: could not run a private instance: {detail}")
            return 0
        print(f"postfix:  {'':>8} {'':13}  {peer:8.0f} msg/s delivered")
        print(f"ratio postroom/postfix: {rate / peer:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
