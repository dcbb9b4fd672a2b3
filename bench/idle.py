"""Many IDLE clients over TLS on one postroom process: memory per connection and the time
from a delivery to every client seeing ``* n EXISTS``.

    python bench/idle.py [--connections 1000] [--deliveries 5] [--via store|smtp] [--rev2]
                         [--messages 0]

postroom runs in a child process (as ``postroom serve`` would, uvloop when installed) with
IMAPS (and SMTP for ``--via smtp``) on loopback ports and its connection limits raised to
fit, and ``--messages`` messages already in the INBOX.  This process opens ``--connections`` IMAPS connections (SCRAM-SHA-256 with SASL-IR,
so the server does no argon2 work per login; SELECT INBOX; IDLE), ``--setup`` at a time.
Memory per connection is the server's RSS (/proc/PID/status VmRSS) once every client idles,
minus its RSS after a warm-up round of connections, divided by the count.  Each delivery is
a store append in the server process (``--via store``: the clock starts before the append
call) or an SMTP transaction to its MX port (``--via smtp``: the clock starts before
``sendmail`` on an open SMTP session); the latency of a client is when this process
decrypted its EXISTS line (CLOCK_MONOTONIC is shared by both processes).  Once idling, the
clients are read by a protocol callback, not a task each: this process shares the machine
with the server, and a task wake-up per client and delivery here cost as much CPU as the
server's whole work, which is what is measured.  Clients are IMAP4rev1 (\\Recent is
claimed) unless ``--rev2``.  RLIMIT_NOFILE is raised to its hard limit.  Results are
printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import hashlib
import hmac
import os
import re
import resource
import smtplib
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import free_port, start_with_account, use_uvloop

USER = "idle@example.test"
PASSWORD = "bench password 1"

WARMUP = 50  # connections opened and closed before the baseline RSS


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def message(n: int) -> bytes:
    return (
        f"From: Bench <bench@example.org>\r\nTo: {USER}\r\nSubject: delivery {n}\r\n"
        f"Message-ID: <{n}.{time.time_ns()}@bench>\r\nDate: Mon, 01 Jan 2024 00:00:00 +0000\r\n"
        f"\r\nDelivery number {n}.\r\n"
    ).encode()


# -- the server (child process) --------------------------------------------------------------
def serve(data_dir: str, connections: int, messages: int) -> None:
    """Start postroom, create the account, then obey stdin: DELIVER (append one message and
    print when the call started) until EOF."""
    use_uvloop()
    imaps, smtp = free_port(), free_port()
    most = connections + WARMUP + 10

    async def run() -> None:
        server, store, inbox = await start_with_account(
            data_dir,
            {"imaps": imaps, "smtp": smtp},
            USER,
            PASSWORD,
            limits={"connections_per_ip": most, "connections": most},
            dns={"nameservers": ["127.0.0.1:9"]},  # nothing answers: lookups fail fast
        )
        for first in range(0, messages, 200):
            batch = range(first, min(messages, first + 200))
            await asyncio.gather(*(store.append(inbox.id, message(-i)) for i in batch))
        await store.claim_recent(inbox.id)
        print(f"READY {imaps} {smtp} {os.getpid()}", flush=True)
        loop = asyncio.get_running_loop()
        n = 0
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            n += 1
            start = time.monotonic()
            await store.append(inbox.id, message(n))
            print(f"DELIVERED {start:.6f}", flush=True)
        await server.stop(grace=5)

    asyncio.run(run())


# -- the clients (this process) --------------------------------------------------------------
class Scram:
    """SCRAM-SHA-256 client (RFC 5802, RFC 7677); the salted password is computed once."""

    salted: dict[tuple[bytes, int], bytes] = {}

    def __init__(self) -> None:
        self.nonce = base64.b64encode(os.urandom(18)).decode()
        self.first_bare = f"n={USER},r={self.nonce}"

    def first(self) -> bytes:
        return base64.b64encode(b"n,," + self.first_bare.encode())

    def final(self, challenge: bytes) -> bytes:
        server_first = base64.b64decode(challenge).decode()
        fields = dict(item.split("=", 1) for item in server_first.split(","))
        salt, iterations = base64.b64decode(fields["s"]), int(fields["i"])
        key = (salt, iterations)
        if key not in self.salted:
            self.salted[key] = hashlib.pbkdf2_hmac("sha256", PASSWORD.encode(), salt, iterations)
        client_key = hmac.digest(self.salted[key], b"Client Key", "sha256")
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = f"c=biws,r={fields['r']}"
        auth_message = f"{self.first_bare},{server_first},{without_proof}".encode()
        signature = hmac.digest(stored_key, auth_message, "sha256")
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        return base64.b64encode(f"{without_proof},p={base64.b64encode(proof).decode()}".encode())


_EXISTS = re.compile(rb"^\* (\d+) EXISTS\r\n$")
_EXISTS_LINE = re.compile(rb"\* (\d+) EXISTS$")


class Tally:
    """When each client read each EXISTS count, and a future per count that is done when
    every client read it."""

    def __init__(self, clients: int) -> None:
        self.clients = clients
        self.seen: dict[int, list[float]] = {}
        self.waiting: dict[int, asyncio.Future[None]] = {}

    def saw(self, count: int, when: float) -> None:
        times = self.seen.setdefault(count, [])
        times.append(when)
        future = self.waiting.get(count)
        if len(times) == self.clients and future is not None and not future.done():
            future.set_result(None)

    async def wait_all(self, count: int, timeout: float) -> list[float]:
        """The times clients read ``count``, once all did or after ``timeout``."""
        future = self.waiting[count] = asyncio.get_running_loop().create_future()
        if len(self.seen.get(count, ())) >= self.clients:
            future.set_result(None)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(future, timeout)
        return self.seen.get(count, [])


class ExistsListener(asyncio.Protocol):
    """An idling client: the time each ``* n EXISTS`` line arrives goes to the tally."""

    def __init__(self, tally: Tally, buffered: bytes) -> None:
        self.tally = tally
        self.buffer = buffered

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        *lines, self.buffer = (self.buffer + data).split(b"\r\n")
        for line in lines:
            m = _EXISTS_LINE.match(line)
            if m:
                self.tally.saw(int(m.group(1)), now)

    def connection_lost(self, exc: Exception | None) -> None:
        pass


class IdleClient:
    def __init__(self) -> None:
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.exists = 0  # EXISTS in the SELECT response

    async def _until(self, tag: bytes) -> list[bytes]:
        assert self.reader is not None
        lines = []
        while True:
            line = await self.reader.readline()
            if not line:
                raise ConnectionError("closed")
            lines.append(line)
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise RuntimeError(line)
                return lines

    async def start(self, port: int, ctx: ssl.SSLContext, rev2: bool) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
        r, w = self.reader, self.writer
        await r.readline()
        scram = Scram()
        w.write(b"a AUTHENTICATE SCRAM-SHA-256 " + scram.first() + b"\r\n")
        line = await r.readline()
        w.write(scram.final(line[2:].strip()) + b"\r\n")
        line = await r.readline()
        if not line.startswith(b"+ "):
            raise RuntimeError(line)
        w.write(b"\r\n")
        await self._until(b"a")
        if rev2:
            w.write(b"e ENABLE IMAP4rev2\r\n")
            await self._until(b"e")
        w.write(b"s SELECT INBOX\r\n")
        for line in await self._until(b"s"):
            m = _EXISTS.match(line)
            if m:
                self.exists = int(m.group(1))
        w.write(b"i IDLE\r\n")
        line = await r.readline()
        if not line.startswith(b"+ "):
            raise RuntimeError(line)

    def listen(self, tally: Tally) -> None:
        """Hand the connection to a protocol that reports EXISTS lines to ``tally`` as they
        are decrypted (no task per client: see the module docstring)."""
        assert self.writer is not None and self.reader is not None
        buffered = bytes(self.reader._buffer)  # noqa: SLF001 - nothing is expected there
        self.writer.transport.set_protocol(ExistsListener(tally, buffered))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.transport.abort()


def client_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def open_clients(count: int, port: int, setup: int, rev2: bool) -> list[IdleClient]:
    ctx = client_context()
    gate = asyncio.Semaphore(setup)

    async def one() -> IdleClient:
        client = IdleClient()
        async with gate:
            for attempt in range(5):
                try:
                    await client.start(port, ctx, rev2)
                    return client
                except (OSError, ConnectionError, ssl.SSLError):
                    client.close()
                    client = IdleClient()
                    await asyncio.sleep(0.2 * (attempt + 1))
            await client.start(port, ctx, rev2)
            return client

    return list(await asyncio.gather(*(one() for _ in range(count))))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def bench(args: argparse.Namespace, proc: subprocess.Popen[str], ports: tuple[int, int],
                pid: int) -> None:  # fmt: skip
    imaps, smtp_port = ports
    assert proc.stdin is not None and proc.stdout is not None
    loop = asyncio.get_running_loop()
    # warm-up: every code path of a session runs once, so imports and caches are in the
    # baseline rather than counted per connection
    warm = await open_clients(WARMUP, imaps, args.setup, args.rev2)
    for c in warm:
        c.close()
    await asyncio.sleep(1.0)
    base = rss_kib(pid)
    started = time.monotonic()
    clients = await open_clients(args.connections, imaps, args.setup, args.rev2)
    setup_s = time.monotonic() - started
    tally = Tally(len(clients))
    for c in clients:
        c.listen(tally)
    await asyncio.sleep(2.0)
    full = rss_kib(pid)
    per_conn = (full - base) * 1024 / args.connections
    print(f"connections: {args.connections} idling on an INBOX of {clients[0].exists} "
          f"messages (set up in {setup_s:.1f} s, "
          f"{args.setup} at a time, clients {'IMAP4rev2' if args.rev2 else 'IMAP4rev1'})")  # fmt: skip
    print(f"server RSS: {base / 1024:.1f} MiB after warm-up -> {full / 1024:.1f} MiB with all "
          f"idling = {per_conn / 1024:.1f} KiB per connection")  # fmt: skip
    smtp = None
    if args.via == "smtp":
        smtp = smtplib.SMTP("127.0.0.1", smtp_port, timeout=60)
        smtp.ehlo("bench.example.org")
    latencies: list[float] = []
    worst: list[float] = []
    target = clients[0].exists
    cpu_server, cpu_client = cpu_seconds(pid), cpu_seconds(os.getpid())
    for n in range(1, args.deliveries + 1):
        target += 1
        if smtp is not None:
            start = time.monotonic()
            await loop.run_in_executor(None, smtp.sendmail, "bench@example.org", [USER], message(n))
        else:
            proc.stdin.write("DELIVER\n")
            proc.stdin.flush()
            reply = await loop.run_in_executor(None, proc.stdout.readline)
            start = float(reply.split()[1])
        round_lat = [t - start for t in await tally.wait_all(target, timeout=120)]
        seen = len(round_lat)
        latencies.extend(round_lat)
        worst.append(max(round_lat))
        print(f"  delivery {n}: {seen}/{len(clients)} clients saw EXISTS {target}; "
              f"median {statistics.median(round_lat) * 1000:.1f} ms, "
              f"max {max(round_lat) * 1000:.1f} ms")  # fmt: skip
        await asyncio.sleep(0.5)
    cpu_server = cpu_seconds(pid) - cpu_server
    cpu_client = cpu_seconds(os.getpid()) - cpu_client
    if smtp is not None:
        smtp.quit()
    print(f"CPU during the deliveries (incl. 0.5 s pauses): server {cpu_server:.2f} s, "
          f"clients {cpu_client:.2f} s, for {args.deliveries} x {len(clients)} wake-ups")  # fmt: skip
    print(f"delivery -> EXISTS over {args.deliveries} deliveries x {len(clients)} clients "
          f"(via {args.via}): median {statistics.median(latencies) * 1000:.1f} ms, "
          f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms, "
          f"max {max(latencies) * 1000:.1f} ms")  # fmt: skip
    for c in clients:
        c.close()
    gc.collect()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--deliveries", type=int, default=5)
    parser.add_argument("--setup", type=int, default=100, help="connections set up at once")
    parser.add_argument("--via", choices=("store", "smtp"), default="store")
    parser.add_argument("--rev2", action="store_true", help="clients ENABLE IMAP4rev2")
    parser.add_argument("--messages", type=int, default=0, help="messages in the INBOX first")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    nofile = raise_nofile()
    if args.serve:
        serve(args.serve, args.connections, args.messages)
        return
    cmd = f"python bench/idle.py --connections {args.connections} --deliveries {args.deliveries}"
    cmd += f" --via {args.via}" + (" --rev2" if args.rev2 else "")
    cmd += f" --messages {args.messages}" if args.messages else ""
    print(f"$ {cmd}")
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, RLIMIT_NOFILE {nofile}")
    if nofile < 2 * (args.connections + WARMUP) + 100:
        sys.exit(f"RLIMIT_NOFILE {nofile} is too low for {args.connections} connections")
    with tempfile.TemporaryDirectory(prefix="postroom-idle-") as tmp:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(Path(tmp) / "data"),
             "--connections", str(args.connections), "--messages", str(args.messages)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            _, imaps, smtp, pid = proc.stdout.readline().split()
            try:
                import uvloop

                uvloop.install()
            except ImportError:
                pass
            asyncio.run(bench(args, proc, (int(imaps), int(smtp)), int(pid)))
        finally:
            assert proc.stdin is not None
            proc.stdin.close()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
