"""The asyncio glue of one IMAP connection: reads bytes into the sans-IO core, executes the
commands it yields against the store and the authenticator, and tells the client about other
sessions' changes at the moments RFC 9051 §7.5.1 allows.

Commands of the authenticated state live in ``mailboxes``, those of the selected state in
``messages``; this module holds the connection loop, the not-authenticated commands, ENABLE,
ID, NOOP, IDLE (its parked sessions in ``idle``) and the change synchronisation every
command ends with.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import Awaitable, Callable, Iterable

from postroom.app import App
from postroom.auth.authenticator import AuthOutcome, Challenge
from postroom.imap import response, shared
from postroom.imap.core import Close, Core, Execute, Send, State
from postroom.imap.deflate import Deflate, DeflateError
from postroom.imap.framer import Line
from postroom.imap.idle import Idler
from postroom.imap.parser import Authenticate, Command, IdArgs, Login
from postroom.imap.view import MailboxView
from postroom.net.connection import Connection, ConnectionClosed
from postroom.store.base import Account
from postroom.store.notifier import Change, ChangeKind, Subscription

PRE_AUTH_TIMEOUT = 60.0  # seconds to log in (RFC 9051 §5.4 bounds only authenticated sessions)
IDLE_HEARTBEAT = 110.0  # "* OK Still here" at least every 2 minutes (NAT keepalive)
OUTPUT_CHUNK = 128 * 1024  # bytes queued before they are handed to the transport
NO_EXPUNGE = frozenset({"FETCH", "STORE", "SEARCH", "SORT", "THREAD"})  # RFC 9051 §7.5.1
Handler = Callable[["Session", Command], Awaitable[bytes]]


class SessionEnded(Exception):
    """LOGOUT, BYE, or a refusal that closes the connection."""


class Session:
    def __init__(self, app: App, conn: Connection) -> None:
        self.app = app
        self.conn = conn
        self.store = app.store
        self.core = Core(app.settings.limits.message_size)
        self.account: Account | None = None
        self.sub: Subscription | None = None
        self.view: MailboxView | None = None
        self.rev2 = False  # ENABLE IMAP4rev2 (RFC 9051 §6.3.1)
        self.utf8 = False  # ENABLE UTF8=ACCEPT (RFC 6855) or IMAP4rev2
        self.condstore = False  # RFC 7162 §3.1: enabled by ENABLE or any enabling command
        self.qresync = False
        self.view_changed = False  # changed by this session: sync without sharing the query
        self.own_modseqs: set[int] = set()  # modseqs of this session's own flag changes
        self.deflate: Deflate | None = None  # COMPRESS=DEFLATE is active (RFC 4978)
        self._out: list[bytes] = []
        self._queued = 0

    # -- output --------------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        """Queue output; small responses are coalesced so a FETCH of 100,000 lines costs a
        few hundred TLS records, not 100,000."""
        if not data:
            return
        self._out.append(data)
        self._queued += len(data)
        if self._queued >= OUTPUT_CHUNK:
            self.push()

    def push(self) -> None:
        if self._out:
            data = b"".join(self._out)
            self._out.clear()
            self._queued = 0
            if self.deflate is not None:
                data = self.deflate.compress(data)
            self.conn.write_nowait(data)

    def backlogged(self) -> bool:
        """Whether more than a chunk of output waits for the client to read it."""
        return self.conn.writer.transport.get_write_buffer_size() > OUTPUT_CHUNK

    async def flush(self) -> None:
        self.push()
        await self.conn.drain()

    # -- capabilities --------------------------------------------------------------------
    def capabilities(self) -> str:
        caps = ["IMAP4rev1", "IMAP4rev2"]
        secure = self.conn.secure
        if self.core.state == State.NOT_AUTHENTICATED:
            caps += ["SASL-IR", "LITERAL-", "ID", "ENABLE", "IDLE"]
            if not secure:
                caps.append("STARTTLS")
            if not self.app.auth.plaintext_allowed(secure):
                caps.append("LOGINDISABLED")  # RFC 9051 §6.2.3
            caps += ["AUTH=" + m for m in self.app.auth.mechanisms(secure)]
        else:
            caps += [
                "LITERAL+", "ID", "ENABLE", "IDLE", "NAMESPACE", "UNSELECT", "UIDPLUS", "MOVE",
                "CHILDREN", "SPECIAL-USE", "CREATE-SPECIAL-USE", "LIST-EXTENDED", "LIST-STATUS",
                "STATUS=SIZE", "ESEARCH", "SEARCHRES", "CONDSTORE", "QRESYNC", "BINARY",
                "UTF8=ACCEPT", f"APPENDLIMIT={self.app.settings.limits.message_size}",
                "MULTIAPPEND", "QUOTA", "QUOTA=RES-STORAGE", "SORT", "SORT=DISPLAY",
                "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES",
            ]  # fmt: skip
            if self.deflate is None:
                caps.append("COMPRESS=DEFLATE")
        return " ".join(caps)

    # -- the connection loop -------------------------------------------------------------
    async def run(self) -> None:
        self.conn.log("imap session", secure=self.conn.secure)
        self.send(
            response.ok(f"{self.app.hostname} postroom ready", "CAPABILITY " + self.capabilities())
        )
        try:
            await self.flush()
            while True:
                event = self.core.next_event()
                if event is None:
                    await self.flush()
                    self.core.feed(await self.read())
                    continue
                if isinstance(event, Send):
                    self.send(event.data)
                elif isinstance(event, Close):
                    self.send(event.data)
                    await self.flush()
                    return
                elif isinstance(event, Execute):
                    await self.execute(event.command)
        except SessionEnded:
            await self.flush()
        except TimeoutError:
            self.send(response.untagged("BYE Autologout; idle for too long"))
            await self.flush()
        except DeflateError:
            self.deflate = None  # the stream is broken: say goodbye uncompressed
            self.send(response.untagged("BYE Invalid compressed data"))
            await self.flush()
        except ConnectionClosed:
            pass
        finally:
            if self.sub is not None:
                self.sub.close()

    async def read(self, timeout: float | None = None) -> bytes:
        """The next bytes from the client, decompressed when COMPRESS is active (at most
        deflate.CHUNK at a time; the rest is decompressed on the next call)."""
        if timeout is None and self.core.state == State.NOT_AUTHENTICATED:
            timeout = PRE_AUTH_TIMEOUT
        deflate = self.deflate
        if deflate is None:
            return await self.conn.read(timeout)
        while True:
            data = deflate.decompress() if deflate.pending else b""
            if not data:
                data = deflate.decompress(await self.conn.read(timeout))
            if data:
                return data

    def start_compression(self) -> None:
        """RFC 4978 §3: compression starts right after the tagged OK in both directions, so
        whatever the client pipelined after COMPRESS is already compressed."""
        self.deflate = Deflate()
        rest = self.core.take_buffered()
        if rest:
            self.core.feed(self.deflate.decompress(rest))

    async def read_line(self) -> bytes:
        """A bare line (SASL response, DONE) after a continuation request."""
        self.core.expect_line()
        while True:
            event = self.core.next_event()
            if event is None:
                await self.flush()
                self.core.feed(await self.read())
                continue
            if isinstance(event, Line):
                return event.data
            if isinstance(event, Close):
                self.send(event.data)
                raise SessionEnded
            if isinstance(event, Send):
                self.send(event.data)

    async def execute(self, cmd: Command) -> None:
        handler = HANDLERS[cmd.name]
        # A graceful stop lets a command in flight (an APPEND being committed) finish, and
        # ends sessions that wait for input (IDLE included) at once.
        self.conn.busy = cmd.name != "IDLE"
        try:
            tagged = await handler(self, cmd)
        except (SessionEnded, ConnectionClosed, TimeoutError, DeflateError):
            raise
        except Exception as exc:  # a bug must cost one command, not the connection
            self.conn.log("imap command failed", logging.ERROR, cmd=cmd.name, error=repr(exc))
            tagged = response.tagged(cmd.tag, "NO", "Internal error", "SERVERBUG")
        finally:
            self.conn.busy = False
        if self.view is not None:
            await self.sync(allow_expunge=cmd.name not in NO_EXPUNGE)
        self.send(tagged)

    # -- change synchronisation ----------------------------------------------------------
    def drain_events(self) -> tuple[bool, int | None]:
        """Whether the selected mailbox changed since the last sync (RFC 9051 §5.2), and the
        highest modseq the resynchronisation must reach (None: unknown, query alone)."""
        sub, view = self.sub, self.view
        if sub is None or view is None:
            return False, None
        need: int | None = -1
        for change in sub.drain():
            if self.note_change(change) and need is not None:
                need = max(need, change.modseq)
        if sub.overflowed or self.view_changed:
            sub.overflowed = False
            need = None
        changed = need is None or need >= 0
        self.view_changed = False
        return changed, need

    def note_change(self, change: Change) -> bool:
        """Whether a notification concerns the selected mailbox and needs a sync."""
        view = self.view
        if view is None or change.mailbox_id != view.mailbox_id:
            return False
        if change.kind == ChangeKind.FLAGS_CHANGED and change.modseq in self.own_modseqs:
            self.own_modseqs.discard(change.modseq)  # our own STORE, already answered
            return False
        if change.kind == ChangeKind.MAILBOX_DELETED:
            self.send(response.untagged("BYE Selected mailbox was deleted"))
            raise SessionEnded
        return True

    def note_own(self, modseqs: Iterable[int]) -> None:
        """Remember modseqs this session produced so their notifications cost no query."""
        if len(self.own_modseqs) > 256:
            self.own_modseqs.clear()
        self.own_modseqs.update(modseqs)

    async def sync(self, allow_expunge: bool, force: bool = False) -> None:
        """Announce other sessions' changes: EXISTS, FETCH flags and — when allowed —
        EXPUNGE or VANISHED."""
        view = self.view
        if view is None:
            return
        changed, need = self.drain_events()
        if not changed and not force:
            if allow_expunge and view.pending_expunge:
                for line in view.expunge(sorted(view.pending_expunge)):
                    self.send(line)
            return
        before = len(view)
        changes = await shared.changes_since(self.store, view.mailbox_id, view.modseq, need)
        for line in view.apply(changes, allow_expunge, fresh=need is None):
            self.send(line)
        if len(view) > before and not self.rev2 and not view.readonly:
            await self.claim_recent()

    async def claim_recent(self, reserved: int | None = None) -> None:
        """\\Recent for IMAP4rev1 sessions (RFC 3501 §2.3.2): the first session to see a new
        message gets it.  ``reserved``: ``shared.reserve_recent`` already made this session
        the one to claim up to that UID."""
        view = self.view
        assert view is not None
        if reserved is None:
            last = view.uids[-1] if view.uids else 0
            claimed = await shared.claim_recent(self.store, view.mailbox_id, view.uidvalidity, last)
        else:
            claimed = await shared.claim_reserved(
                self.store, view.mailbox_id, view.uidvalidity, reserved
            )
        view.recent.update(claimed)
        self.send(b"* %d RECENT\r\n" % len(view.recent))

    # -- login ---------------------------------------------------------------------------
    async def logged_in(self, cmd: Command, account: Account) -> bytes:
        self.account = account
        self.core.set_state(State.AUTHENTICATED)
        self.sub = self.store.notifier.subscribe(account.id)
        self.conn.log("imap login", account=account.address)
        return response.tagged(cmd.tag, "OK", "Logged in", "CAPABILITY " + self.capabilities())

    def auth_failed(self, cmd: Command, outcome: AuthOutcome) -> bytes:
        if outcome.temporary:
            return response.tagged(cmd.tag, "NO", "Try again later", "UNAVAILABLE")
        return response.tagged(cmd.tag, "NO", "Authentication failed", "AUTHENTICATIONFAILED")


# -- commands of any state -------------------------------------------------------------------
async def cmd_capability(s: Session, cmd: Command) -> bytes:
    s.send(response.untagged("CAPABILITY " + s.capabilities()))
    return response.tagged(cmd.tag, "OK", "Capability completed")


async def cmd_noop(s: Session, cmd: Command) -> bytes:
    if s.view is not None:
        await s.sync(allow_expunge=True, force=False)
    return response.tagged(cmd.tag, "OK", "NOOP completed")


async def cmd_logout(s: Session, cmd: Command) -> bytes:
    s.send(response.untagged("BYE Logging out"))
    s.send(response.tagged(cmd.tag, "OK", "Logout completed"))
    s.core.set_state(State.LOGOUT)
    raise SessionEnded


async def cmd_id(s: Session, cmd: Command) -> bytes:
    """RFC 2971: the client's parameters are only logged (bounded), ours are sent."""
    args: IdArgs = cmd.args
    if args.params:
        client = {k.decode("utf-8", "replace")[:30]: (v or b"").decode("utf-8", "replace")[:60]
                  for k, v in args.params}  # fmt: skip
        s.conn.log("imap id", client=str(client))
    s.send(response.untagged(b'ID ("name" "postroom" "vendor" "postroom")'))
    return response.tagged(cmd.tag, "OK", "ID completed")


# -- not authenticated ---------------------------------------------------------------------
async def cmd_starttls(s: Session, cmd: Command) -> bytes:
    if s.conn.secure:
        return response.tagged(cmd.tag, "BAD", "TLS is already active")
    s.conn.freeze()
    s.send(response.tagged(cmd.tag, "OK", "Begin TLS negotiation now"))
    await s.flush()
    await s.conn.start_tls(s.app.tls.context)
    s.core.clear()  # RFC 9051 §6.2.1: nothing sent before the handshake may be executed
    return b""


async def cmd_login(s: Session, cmd: Command) -> bytes:
    if not s.app.auth.plaintext_allowed(s.conn.secure):
        # RFC 9051 §6.2.3 / §7.1: LOGINDISABLED is advertised; refuse with PRIVACYREQUIRED.
        return response.tagged(cmd.tag, "NO", "Use STARTTLS first", "PRIVACYREQUIRED")
    args: Login = cmd.args
    outcome = await s.app.auth.login(
        args.userid.decode("utf-8", "replace"),
        args.password.decode("utf-8", "replace"),
        s.conn.peer_ip,
    )
    if outcome.account is None:
        return s.auth_failed(cmd, outcome)
    return await s.logged_in(cmd, outcome.account)


def _b64(data: bytes) -> bytes | None:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None


async def cmd_authenticate(s: Session, cmd: Command) -> bytes:
    """RFC 9051 §6.2.2 with SASL-IR (RFC 4959)."""
    args: Authenticate = cmd.args
    if not s.app.auth.plaintext_allowed(s.conn.secure):
        return response.tagged(cmd.tag, "NO", "Use STARTTLS first", "PRIVACYREQUIRED")
    exchange = s.app.auth.sasl(args.mechanism, s.conn.peer_ip, s.conn.secure)
    if exchange is None:
        return response.tagged(cmd.tag, "NO", "Unsupported authentication mechanism", "CANNOT")
    reply: bytes | None = None
    if args.initial is not None:
        reply = b"" if args.initial == b"=" else _b64(args.initial)
        if reply is None:
            exchange.cancel()
            return response.tagged(cmd.tag, "BAD", "Invalid base64 in initial response")
    while True:
        step = await exchange.step(reply)
        if isinstance(step, Challenge):
            s.send(b"+ " + base64.b64encode(step.data) + b"\r\n")
            line = await s.read_line()
            if line == b"*":
                exchange.cancel()
                return response.tagged(cmd.tag, "BAD", "Authentication cancelled")
            reply = _b64(line)
            if reply is None:
                exchange.cancel()
                return response.tagged(cmd.tag, "BAD", "Invalid base64 response")
            continue
        if step.account is None:
            return s.auth_failed(cmd, step)
        return await s.logged_in(cmd, step.account)


# -- authenticated -------------------------------------------------------------------------
_ENABLE = {"CONDSTORE": "CONDSTORE", "QRESYNC": "QRESYNC", "IMAP4REV2": "IMAP4rev2",
           "UTF8=ACCEPT": "UTF8=ACCEPT"}  # fmt: skip


async def cmd_enable(s: Session, cmd: Command) -> bytes:
    """RFC 5161; CONDSTORE/QRESYNC (RFC 7162 §3.2.3), IMAP4rev2, UTF8=ACCEPT (RFC 6855)."""
    enabled = []
    for cap in cmd.args:
        name = _ENABLE.get(cap)
        if name == "CONDSTORE" and not s.condstore:
            s.condstore = True
        elif name == "QRESYNC" and not s.qresync:
            s.qresync = s.condstore = True
        elif name == "IMAP4rev2" and not s.rev2:
            s.rev2 = s.utf8 = True
        elif name == "UTF8=ACCEPT" and not s.utf8:
            s.utf8 = True
        else:
            continue
        enabled.append(name)
    s.send(response.untagged(" ".join(["ENABLED", *enabled])))
    return response.tagged(cmd.tag, "OK", "Enabled")


async def cmd_idle(s: Session, cmd: Command) -> bytes:
    """RFC 2177: wait for DONE while announcing changes as they happen (the notifier wakes
    us within a moment of any commit), with a heartbeat for NAT-ed mobile clients."""
    s.send(b"+ idling\r\n")
    if s.view is not None:
        await s.sync(allow_expunge=True)
    await s.flush()
    s.core.expect_line()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + s.conn.idle_timeout
    idler = Idler(s, loop)
    timer = loop.call_later(IDLE_HEARTBEAT, idler.beat)
    reader: asyncio.Task[bytes] | None = None
    sub = s.sub
    if sub is not None:
        sub.listener = idler.on_change
    try:
        while True:
            event = s.core.next_event()
            if isinstance(event, Line):
                if event.data.upper() != b"DONE":
                    return response.tagged(cmd.tag, "BAD", "Expected DONE")
                return response.tagged(cmd.tag, "OK", "IDLE terminated")
            if isinstance(event, Close):
                s.send(event.data)
                raise SessionEnded
            if loop.time() >= deadline:
                raise TimeoutError
            if reader is None:
                reader = asyncio.ensure_future(s.read(deadline - loop.time()))
                reader.add_done_callback(idler.wake)
            if not (reader.done() or (sub is not None and sub.pending) or idler.beat_due):
                await idler.park()
            if idler.reserved is not None:
                last, idler.reserved = idler.reserved, None
                await s.claim_recent(reserved=last)
            if reader.done():
                data = reader.result()  # TimeoutError at the deadline
                reader = None
                s.core.feed(data)
            if idler.beat_due:
                idler.beat_due = False
                s.send(response.untagged("OK Still here"))
                timer = loop.call_later(IDLE_HEARTBEAT, idler.beat)
            if s.view is not None:
                await s.sync(allow_expunge=True)
            await s.flush()
    finally:
        timer.cancel()
        if sub is not None:
            sub.listener = None
        if reader is not None:
            reader.cancel()
        view = s.view
        if idler.reserved is not None and view is not None:
            shared.release_recent(s.store, view.mailbox_id, view.uidvalidity, idler.reserved)


async def cmd_compress(s: Session, cmd: Command) -> bytes:
    """RFC 4978 §3: COMPRESS DEFLATE."""
    if cmd.args != "DEFLATE":
        return response.tagged(cmd.tag, "BAD", "Unknown compression mechanism")
    if s.deflate is not None:
        return response.tagged(cmd.tag, "NO", "Compression is already active", "COMPRESSIONACTIVE")
    s.send(response.tagged(cmd.tag, "OK", "DEFLATE active"))
    await s.flush()
    s.start_compression()
    return b""


HANDLERS: dict[str, Handler] = {
    "CAPABILITY": cmd_capability,
    "NOOP": cmd_noop,
    "LOGOUT": cmd_logout,
    "ID": cmd_id,
    "STARTTLS": cmd_starttls,
    "LOGIN": cmd_login,
    "AUTHENTICATE": cmd_authenticate,
    "ENABLE": cmd_enable,
    "IDLE": cmd_idle,
    "COMPRESS": cmd_compress,
}


def _register() -> None:
    from postroom.imap import mailboxes, messages, ordering, quota

    HANDLERS.update(mailboxes.HANDLERS)
    HANDLERS.update(messages.HANDLERS)
    HANDLERS.update(ordering.HANDLERS)
    HANDLERS.update(quota.HANDLERS)


_register()


async def handle(app: App, conn: Connection) -> None:
    """Serve one IMAP connection (called by the listener for services imap and imaps)."""
    await Session(app, conn).run()
