#!/usr/bin/env python3
"""Where one SMTP session's time goes: a blocking client times each step of sending one
message per connection (connect and banner, EHLO, MAIL, RCPT, DATA, the body until 250, QUIT)
against postroom and, in the same run, Postfix when installed, and prints each step's median
and mean side by side.  The one-session rows of smtp_ingest.py are the sum of these steps.

    python bench/smtp_phases.py                      # 1,000 messages of 4 KiB and 100 KiB
    python bench/smtp_phases.py --messages 3000 --sizes 102400
    BENCH_SMTP_WORKERS=0 python bench/smtp_phases.py # postroom in one process
"""

from __future__ import annotations

import argparse
import socket
import statistics
import time

from smtp_ingest import SENDER, USER, Peer, PostfixPeer, PostroomPeer, running

STEPS = ("connect+banner", "EHLO", "MAIL", "RCPT", "DATA", "body -> 250", "QUIT", "total")


def reply(sock: socket.socket, buf: bytearray) -> bytes:
    """The last line of the next (possibly multi-line) reply."""
    while True:
        end = buf.find(b"\r\n")
        while end >= 0:
            line = bytes(buf[:end])
            del buf[: end + 2]
            if line[3:4] != b"-":
                return line
            end = buf.find(b"\r\n")
        data = sock.recv(65536)
        if not data:
            raise EOFError("the server closed the connection")
        buf += data


def message(size: int) -> bytes:
    head = f"From: <{SENDER}>\r\nTo: <{USER}>\r\nSubject: phases\r\n\r\n".encode()
    line = b"x" * 76 + b"\r\n"
    return head + line * max(1, (size - len(head)) // len(line)) + b".\r\n"


def session(port: int, body: bytes) -> list[float]:
    """One message on its own connection; the seconds each step took, and the total."""
    commands = [
        b"EHLO phases.test\r\n",
        f"MAIL FROM:<{SENDER}>\r\n".encode(),
        f"RCPT TO:<{USER}>\r\n".encode(),
        b"DATA\r\n",
        body,
        b"QUIT\r\n",
    ]
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = bytearray()
        reply(sock, buf)
        times = [time.perf_counter() - start]
        for command in commands:
            sent = time.perf_counter()
            sock.sendall(command)
            answer = reply(sock, buf)
            if answer[:1] not in b"23":
                raise RuntimeError(f"refused: {answer!r}")
            times.append(time.perf_counter() - sent)
    times.append(time.perf_counter() - start)
    return times


def measure(peer: Peer, size: int, count: int) -> list[list[float]]:
    """Per step, the seconds of each message after a warm-up fifth."""
    body = message(size)
    for _ in range(count // 5):
        session(peer.port, body)
    runs = [session(peer.port, body) for _ in range(count)]
    return [list(step) for step in zip(*runs, strict=True)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--sizes", default="4096,102400")
    args = parser.parse_args()
    peers: list[Peer] = [PostroomPeer()]
    reason = PostfixPeer.unavailable()
    if reason:
        print(f"postfix: skipped ({reason})")
    else:
        peers.append(PostfixPeer())
    with running(peers, "smtp-phases-"):
        for size in map(int, args.sizes.split(",")):
            results = {peer.name: measure(peer, size, args.messages) for peer in peers}
            print(f"\n{size // 1024} KiB, one message per connection, {args.messages} messages")
            print(
                f"{'ms per step':16s}" + "".join(f"{p.name + ' median/mean':>26s}" for p in peers)
            )
            for i, step in enumerate(STEPS):
                cells = "".join(
                    f"{statistics.median(r[i]) * 1e3:>17.3f} / {statistics.mean(r[i]) * 1e3:6.3f}"
                    for r in results.values()
                )
                print(f"{step:16s}{cells}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
