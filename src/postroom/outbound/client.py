"""One SMTP client session to a next hop (aiosmtplib), carrying several transactions.

A session is opened once (greeting, EHLO, STARTTLS, AUTH) and then carries every message for
that hop; each transaction returns one result per recipient, so the queue can record exactly
who was accepted.  TLS follows the hop's mode: opportunistic (STARTTLS when offered, no
certificate check, plaintext again if the handshake fails: RFC 3207 §4.1 allows it, and a
refused message is worse than an unencrypted one), verified (MTA-STS enforce, REQUIRETLS,
smarthost), implicit (smarthost port 465) or none.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

import aiosmtplib

from postroom.outbound.queue import RcptState, RecipientRecord, RecipientResult

OPPORTUNISTIC = "opportunistic"
VERIFY = "verify"
IMPLICIT = "implicit"
NO_TLS = "none"

# RFC 5321 §4.5.3.2: the client's timeouts (5 min per command, 10 min for the end of DATA);
# connecting is bounded more tightly so a dead host does not hold a slot for long.
CONNECT_TIMEOUT = 30.0
COMMAND_TIMEOUT = 300.0
DATA_TIMEOUT = 600.0

_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)")

_CONNECTION_ERRORS = (
    aiosmtplib.SMTPServerDisconnected,
    aiosmtplib.SMTPConnectError,
    aiosmtplib.SMTPTimeoutError,
    OSError,
    TimeoutError,
)


@dataclass(frozen=True, slots=True)
class Target:
    """Where to connect and how."""

    name: str  # host name: TLS verification, Remote-MTA, logs
    address: str  # IP to connect to
    port: int
    tls: str = OPPORTUNISTIC
    auth: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Transaction:
    sender: str
    recipients: Sequence[RecipientRecord]
    data: bytes
    envid: str | None = None
    ret: str | None = None
    requiretls: bool = False


class SessionError(Exception):
    """The session could not be opened or was lost.  ``permanent`` only for answers that
    retrying cannot change."""

    def __init__(self, message: str, *, status: str = "4.4.1", permanent: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.permanent = permanent


def xtext(text: str) -> str:
    """RFC 3461 §4: "+", "=" and characters outside ! .. ~ as +HH."""
    return "".join(
        c if "!" <= c <= "~" and c not in "+=" else "".join(f"+{b:02X}" for b in c.encode())
        for c in text
    )


def utf8_addr_xtext(text: str) -> str:
    """RFC 6533 §3 utf-8-addr-xtext: QCHAR as is, anything else as \\x{HEX}."""
    return "".join(c if "!" <= c <= "~" and c not in "+=\\" else f"\\x{{{ord(c):X}}}" for c in text)


def reply_text(exc: aiosmtplib.SMTPResponseException) -> str:
    return f"{exc.code} {' '.join(exc.message.split())}"


def reply_status(code: int, message: str) -> str:
    """The enhanced status code a reply carries (RFC 2034), else a generic one of its class."""
    match = _ENHANCED.match(message.strip())
    if match and match.group(1) == str(code)[0]:
        return ".".join(match.groups())
    return f"{str(code)[0]}.0.0"


class Session:
    def __init__(self, target: Target, smtp: aiosmtplib.SMTP, verified: bool) -> None:
        self.target = target
        self.smtp = smtp
        self.verified = verified  # TLS with a certificate checked against target.name

    @property
    def tls(self) -> str | None:
        """The TLS version in use, None for plaintext."""
        obj = self.smtp.get_transport_info("ssl_object")
        return obj.version() if obj is not None else None

    def supports(self, extension: str) -> bool:
        return self.smtp.supports_extension(extension)

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        target: Target,
        helo: str,
        *,
        trust: ssl.SSLContext,
        connect_timeout: float = CONNECT_TIMEOUT,
        timeout: float = COMMAND_TIMEOUT,
    ) -> Session:
        """Connect, greet, secure and authenticate as the target asks; SessionError if not."""
        try:
            return await cls._open(target, helo, trust, connect_timeout, timeout, plain=False)
        except _TlsFallback:
            return await cls._open(target, helo, trust, connect_timeout, timeout, plain=True)

    @classmethod
    async def _open(
        cls,
        target: Target,
        helo: str,
        trust: ssl.SSLContext,
        connect_timeout: float,
        timeout: float,
        plain: bool,
    ) -> Session:
        implicit = target.tls == IMPLICIT
        smtp = aiosmtplib.SMTP(
            # Implicit TLS needs the name for SNI and verification; aiosmtplib connects to it.
            hostname=target.name if implicit else target.address,
            port=target.port,
            local_hostname=helo,
            timeout=timeout,
            use_tls=implicit,
            start_tls=False,
            tls_context=trust if implicit else None,
        )
        verified = implicit
        try:
            await smtp.connect(timeout=connect_timeout)
            await cls._hello(smtp)
            if target.tls == VERIFY or (target.tls == OPPORTUNISTIC and not plain):
                verified = await cls._starttls(smtp, target, trust)
            if target.auth is not None:
                if smtp.get_transport_info("ssl_object") is None and target.tls != NO_TLS:
                    raise SessionError(f"{target.name}: refusing to authenticate without TLS")
                await smtp.login(*target.auth)
        except _TlsFallback:
            smtp.close()
            raise
        except SessionError:
            smtp.close()
            raise
        except aiosmtplib.SMTPResponseException as exc:
            smtp.close()
            raise SessionError(
                f"{target.name}[{target.address}]:{target.port} said: {reply_text(exc)}",
                status=reply_status(exc.code, exc.message),
            ) from None
        except (*_CONNECTION_ERRORS, aiosmtplib.SMTPException) as exc:
            smtp.close()
            raise SessionError(
                f"{target.name}[{target.address}]:{target.port}: {_describe(exc)}",
                status="4.4.1" if not isinstance(exc, ssl.SSLError) else "4.7.5",
            ) from None
        return cls(target, smtp, verified)

    @staticmethod
    async def _hello(smtp: aiosmtplib.SMTP) -> None:
        try:
            await smtp.ehlo()
        except aiosmtplib.SMTPHeloError:
            await smtp.helo()  # RFC 5321 §3.2: a server without EHLO gets HELO

    @classmethod
    async def _starttls(cls, smtp: aiosmtplib.SMTP, target: Target, trust: ssl.SSLContext) -> bool:
        """STARTTLS (RFC 3207); True when the certificate was verified."""
        verify = target.tls == VERIFY
        if not smtp.supports_extension("starttls"):
            if verify:
                raise SessionError(
                    f"{target.name}: STARTTLS required but not offered", status="4.7.4"
                )
            return False
        context = trust if verify else _unverified()
        try:
            await smtp.starttls(server_hostname=target.name, tls_context=context)
        except aiosmtplib.SMTPResponseException as exc:
            if verify:
                raise SessionError(
                    f"{target.name}: STARTTLS refused: {reply_text(exc)}", status="4.7.5"
                ) from None
            return False  # the session goes on in plaintext
        except (*_CONNECTION_ERRORS, aiosmtplib.SMTPException) as exc:
            if verify:
                raise SessionError(
                    f"{target.name}: TLS failed: {_describe(exc)}", status="4.7.5"
                ) from None
            raise _TlsFallback() from None
        await cls._hello(smtp)  # RFC 3207 §4.2: forget what was learnt before TLS
        return verify

    # -- transactions ------------------------------------------------------------------------

    async def send(self, tx: Transaction) -> list[RecipientResult]:
        """One mail transaction; a result for every recipient.  Raises SessionError when the
        connection is lost (recipients of this transaction then have no result)."""
        name = self.target.name
        needs_utf8 = not (tx.sender.isascii() and all(r.address.isascii() for r in tx.recipients))
        refusal = None
        if needs_utf8 and not self.supports("smtputf8"):  # RFC 6531 §3.2
            refusal = ("5.6.7", f"{name} does not support SMTPUTF8, needed for these addresses")
        elif not tx.data.isascii() and not self.supports("8bitmime"):  # RFC 6152 §3
            refusal = ("5.6.3", f"{name} does not accept 8-bit data (no 8BITMIME)")
        elif tx.requiretls and not (self.verified and self.supports("requiretls")):
            refusal = ("5.7.30", f"{name} cannot honour REQUIRETLS")  # RFC 8689 §4.2.1
        size_limit = self.smtp.esmtp_extensions.get("size", "")
        if refusal is None and size_limit.isdigit() and 0 < int(size_limit) < len(tx.data):
            refusal = ("5.3.4", f"{name} accepts at most {size_limit} bytes")  # RFC 1870 §6
        if refusal is not None:
            return [_result(r, RcptState.FAILED, *refusal, None) for r in tx.recipients]

        dsn = self.supports("dsn")
        options = []
        if self.supports("size"):
            options.append(f"SIZE={len(tx.data)}")
        if not tx.data.isascii():
            options.append("BODY=8BITMIME")
        if self.supports("smtputf8") and (needs_utf8 or not tx.data.isascii()):
            options.append("SMTPUTF8")
        if dsn and tx.ret:
            options.append(f"RET={tx.ret}")
        if dsn and tx.envid:
            options.append(f"ENVID={xtext(tx.envid)}")
        if tx.requiretls:
            options.append("REQUIRETLS")
        try:
            return await self._transaction(tx, options, dsn)
        except aiosmtplib.SMTPResponseException as exc:  # an unexpected reply to RSET
            raise SessionError(f"{name} said: {reply_text(exc)}") from None
        except (*_CONNECTION_ERRORS, aiosmtplib.SMTPException) as exc:
            self.smtp.close()
            raise SessionError(f"{name}: connection lost: {_describe(exc)}") from None

    async def _transaction(
        self, tx: Transaction, options: list[str], dsn: bool
    ) -> list[RecipientResult]:
        name = self.target.name
        try:
            await self.smtp.mail(tx.sender, options=options, encoding="utf-8")
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code == 421:
                raise
            state = RcptState.FAILED if exc.code >= 500 else RcptState.DEFERRED
            status = reply_status(exc.code, exc.message)
            await self._reset()
            return [_result(r, state, status, reply_text(exc), name) for r in tx.recipients]
        accepted: list[RecipientRecord] = []
        results: list[RecipientResult] = []
        for r in tx.recipients:
            rcpt_options = []
            if dsn and r.notify is not None:
                rcpt_options.append("NOTIFY=" + ",".join(sorted(r.notify)))
            if dsn and r.orcpt is not None:
                kind, value = r.orcpt
                encoded = utf8_addr_xtext(value) if kind.lower() == "utf-8" else xtext(value)
                rcpt_options.append(f"ORCPT={kind};{encoded}")
            try:
                await self.smtp.rcpt(r.address, options=rcpt_options, encoding="utf-8")
            except aiosmtplib.SMTPResponseException as exc:
                if exc.code == 421:
                    raise
                state = RcptState.FAILED if exc.code >= 500 else RcptState.DEFERRED
                status = reply_status(exc.code, exc.message)
                results.append(_result(r, state, status, reply_text(exc), name))
            else:
                accepted.append(r)
        if not accepted:
            await self._reset()
            return results
        try:
            reply = await self.smtp.data(tx.data, timeout=DATA_TIMEOUT)
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code == 421:
                raise
            state = RcptState.FAILED if exc.code >= 500 else RcptState.DEFERRED
            status = reply_status(exc.code, exc.message)
            return results + [_result(r, state, status, reply_text(exc), name) for r in accepted]
        text = f"{reply.code} {' '.join(reply.message.split())}"
        status = reply_status(reply.code, reply.message)
        for r in accepted:
            # RFC 3461 §6.2.2: a next hop with DSN takes NOTIFY over; otherwise we owe a
            # "relayed" report to a sender who asked for success notices.
            owed = not dsn and r.notify is not None and "SUCCESS" in r.notify
            results.append(_result(r, RcptState.DELIVERED, status, text, name, notified=not owed))
        return results

    async def _reset(self) -> None:
        await self.smtp.rset()

    async def close(self) -> None:
        """QUIT politely; the connection is closed whatever the server does."""
        try:
            if self.smtp.is_connected:
                await self.smtp.quit(timeout=10)
        except (*_CONNECTION_ERRORS, aiosmtplib.SMTPException):
            pass
        finally:
            self.smtp.close()


class _TlsFallback(Exception):
    """The opportunistic TLS handshake failed: reconnect without STARTTLS."""


def _unverified() -> ssl.SSLContext:
    """Opportunistic TLS (RFC 7435): encrypt without authenticating the peer."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _result(
    r: RecipientRecord,
    state: RcptState,
    status: str,
    diagnostic: str,
    remote: str | None,
    *,
    notified: bool = False,
) -> RecipientResult:
    return RecipientResult(r.id, state, status, diagnostic, remote, notified)
