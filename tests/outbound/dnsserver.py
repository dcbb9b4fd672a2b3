"""A real authoritative DNS server on loopback (dnslib), UDP and TCP on one ephemeral port."""

from __future__ import annotations

import socket
import threading

from dnslib import QTYPE, RCODE, RR
from dnslib.server import BaseResolver, DNSServer


class _Quiet:
    def __getattr__(self, name: str):  # every DNSLogger hook does nothing
        return lambda *args, **kwargs: None


class Zone(BaseResolver):
    """Records added as zone-file lines; names in ``servfail`` answer SERVFAIL."""

    def __init__(self) -> None:
        self.records: list[RR] = []
        self.servfail: set[str] = set()
        self.lock = threading.Lock()

    def add(self, text: str) -> None:
        with self.lock:
            self.records += RR.fromZone(text)

    def remove(self, name: str, rtype: str) -> None:
        with self.lock:
            self.records = [
                r
                for r in self.records
                if not (str(r.rname).rstrip(".") == name and QTYPE[r.rtype] == rtype)
            ]

    def resolve(self, request, handler):
        reply = request.reply()
        qname = str(request.q.qname).rstrip(".").lower()
        qtype = QTYPE[request.q.qtype]
        if qname in self.servfail:
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        with self.lock:
            named = [r for r in self.records if str(r.rname).rstrip(".").lower() == qname]
        if not named:
            reply.header.rcode = RCODE.NXDOMAIN
        for r in named:
            if QTYPE[r.rtype] == qtype:
                reply.add_answer(r)
        return reply


class LoopbackDNS:
    def __init__(self) -> None:
        self.zone = Zone()
        self.udp = DNSServer(self.zone, address="127.0.0.1", port=0, logger=_Quiet())
        self.port = self.udp.server.server_address[1]
        try:
            self.tcp: DNSServer | None = DNSServer(
                self.zone, address="127.0.0.1", port=self.port, tcp=True, logger=_Quiet()
            )
        except OSError:  # the TCP port is taken: UDP is enough for these tests
            self.tcp = None

    @property
    def nameserver(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.udp.start_thread()
        if self.tcp:
            self.tcp.start_thread()

    def stop(self) -> None:
        for server in (self.udp, self.tcp):
            if server is not None:
                server.stop()
                server.server.server_close()


def free_port() -> int:
    """A loopback port nothing listens on (for "unreachable host" tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
