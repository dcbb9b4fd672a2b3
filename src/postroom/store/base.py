"""The Store interface every protocol talks to.

Protocols see accounts, mailboxes and messages through this module only; the SQLite backend
(and later PostgreSQL) implement it.  Every mutating call returns only after its effect is
durable (message bytes fsync'd, metadata committed), so a protocol may acknowledge as soon as
the call returns.  Nothing backend-specific (SQL, paths, connections) crosses this boundary.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from postroom.store.notifier import Notifier
from postroom.store.query import Query

# System flags a message can carry (RFC 9051 §2.3.2).  \Recent is session state, never stored.
SYSTEM_FLAGS = frozenset({"\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"})

# The mailboxes every new account gets, with their RFC 6154 roles.
DEFAULT_MAILBOXES: tuple[tuple[str, str | None], ...] = (
    ("INBOX", None),
    ("Sent", "\\Sent"),
    ("Drafts", "\\Drafts"),
    ("Trash", "\\Trash"),
    ("Junk", "\\Junk"),
    ("Archive", "\\Archive"),
)


class StoreError(Exception):
    """Base of every error the store reports to protocols."""


class NotFound(StoreError):
    """The account, mailbox or message does not exist (IMAP [NONEXISTENT])."""


class AlreadyExists(StoreError):
    """The name is taken (IMAP [ALREADYEXISTS])."""


class OverQuota(StoreError):
    """The account's quota would be exceeded (IMAP [OVERQUOTA], SMTP 452 4.2.2)."""


class Invalid(StoreError):
    """The request is malformed for the store (bad name, INBOX delete, ...)."""


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    address: str  # lower-cased "local@domain"
    quota: int | None  # bytes; None means unlimited


@dataclass(frozen=True, slots=True)
class ScramSecrets:
    """RFC 5802 server-side secrets; the password itself is never stored."""

    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes


@dataclass(frozen=True, slots=True)
class Credentials:
    account: Account
    password_hash: str  # argon2id encoded hash
    scram_sha256: ScramSecrets | None


@dataclass(frozen=True, slots=True)
class Alias:
    source: str  # "local@domain" or "@domain" for a catch-all
    targets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Mailbox:
    id: int
    account_id: int
    name: str  # full UTF-8 name, hierarchy separator "/"; "INBOX" is always spelled so
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    special_use: str | None  # "\\Sent", "\\Drafts", ... (RFC 6154)
    subscribed: bool


@dataclass(frozen=True, slots=True)
class MailboxStatus:
    """Counters for STATUS / SELECT without loading messages."""

    messages: int
    unseen: int
    deleted: int
    size: int  # sum of RFC822.SIZE (STATUS=SIZE, RFC 8438)
    recent: int  # messages not yet claimed as \Recent by any session
    uidnext: int
    uidvalidity: int
    highestmodseq: int
    first_unseen_uid: int | None


@dataclass(frozen=True, slots=True)
class MessageFlags:
    """The cheap per-message state a session keeps for every message of a mailbox."""

    uid: int
    flags: frozenset[str]
    modseq: int


@dataclass(frozen=True, slots=True)
class Message:
    """A stored message with the metadata computed once per message (DESIGN principle 4), right
    after it is stored (store/describe.py).

    ``meta`` is the opaque parse result of ``postroom.mime`` in its serialised form
    (``ParsedMessage.to_bytes()``); callers turn it back with ``ParsedMessage.from_bytes``.
    """

    uid: int
    flags: frozenset[str]
    modseq: int
    internaldate: float  # seconds since the epoch, UTC
    size: int
    blob_id: str  # sha256 hex of the message bytes
    meta: bytes


@dataclass(frozen=True, slots=True)
class Changes:
    """What changed in a mailbox after a MODSEQ (CONDSTORE/QRESYNC, notifications)."""

    highestmodseq: int
    uidnext: int
    changed: tuple[MessageFlags, ...]  # present messages whose modseq > since (incl. new ones)
    expunged: tuple[int, ...]  # uids expunged with modseq > since, ascending


class FlagMode(Enum):
    ADD = "+"
    REMOVE = "-"
    REPLACE = ""


@dataclass(frozen=True, slots=True)
class StoreResult:
    """Outcome of a flag update (RFC 7162 §3.1.3 needs both lists)."""

    updated: tuple[MessageFlags, ...]  # messages whose flags changed, with their new modseq
    failed_unchangedsince: tuple[int, ...] = ()  # uids refused by UNCHANGEDSINCE


@dataclass(frozen=True, slots=True)
class AppendResult:
    uidvalidity: int
    uid: int


@dataclass(frozen=True, slots=True)
class CopyResult:
    """COPYUID data (RFC 4315): source uids and the uids they got, in the same order."""

    uidvalidity: int
    source_uids: tuple[int, ...]
    dest_uids: tuple[int, ...]


@dataclass(slots=True)
class Usage:
    messages: int = 0
    bytes: int = 0


@dataclass(frozen=True, slots=True)
class Delivery:
    """One local delivery target for ``Store.deliver``: a mailbox and the flags to set."""

    mailbox_id: int
    flags: frozenset[str] = field(default_factory=frozenset)


class Store(abc.ABC):
    """Async store of accounts, mailboxes and messages.  Implementations are thread-safe for
    use from one event loop and from several processes sharing the same data."""

    notifier: Notifier

    # -- lifecycle -----------------------------------------------------------------------
    @abc.abstractmethod
    async def open(self) -> None:
        """Create or migrate the schema, recover from a crash, start background writers."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Finish pending writes and release every resource."""

    # -- domains -------------------------------------------------------------------------
    @abc.abstractmethod
    async def add_domain(self, name: str) -> None: ...

    @abc.abstractmethod
    async def remove_domain(self, name: str) -> None:
        """Remove a domain; refused (Invalid) while accounts or aliases still use it."""

    @abc.abstractmethod
    async def list_domains(self) -> list[str]: ...

    @abc.abstractmethod
    async def has_domain(self, name: str) -> bool: ...

    # -- accounts ------------------------------------------------------------------------
    @abc.abstractmethod
    async def create_account(
        self,
        address: str,
        password_hash: str,
        scram_sha256: ScramSecrets | None,
        quota: int | None = None,
    ) -> Account:
        """Create an account in a hosted domain with the DEFAULT_MAILBOXES."""

    @abc.abstractmethod
    async def set_password(
        self, address: str, password_hash: str, scram_sha256: ScramSecrets | None
    ) -> None: ...

    @abc.abstractmethod
    async def set_quota(self, address: str, quota: int | None) -> None: ...

    @abc.abstractmethod
    async def remove_account(self, address: str) -> None:
        """Remove an account with all its mailboxes and messages."""

    @abc.abstractmethod
    async def get_account(self, address: str) -> Account | None:
        """Look an account up by address (case-insensitive)."""

    @abc.abstractmethod
    async def get_account_by_id(self, account_id: int) -> Account | None: ...

    @abc.abstractmethod
    async def list_accounts(self, domain: str | None = None) -> list[Account]: ...

    @abc.abstractmethod
    async def get_credentials(self, address: str) -> Credentials | None: ...

    @abc.abstractmethod
    async def usage(self, account_id: int) -> Usage:
        """Messages and bytes used by an account over all its mailboxes (QUOTA, RFC 9208)."""

    # -- aliases -------------------------------------------------------------------------
    @abc.abstractmethod
    async def add_alias(self, source: str, targets: Sequence[str]) -> None:
        """Add targets to an alias (created if new); ``@domain`` sources are catch-alls."""

    @abc.abstractmethod
    async def remove_alias(self, source: str, targets: Sequence[str] = ()) -> None:
        """Remove the given targets, or the whole alias when none are given."""

    @abc.abstractmethod
    async def list_aliases(self, domain: str | None = None) -> list[Alias]: ...

    @abc.abstractmethod
    async def get_alias(self, source: str) -> Alias | None: ...

    # -- mailboxes -----------------------------------------------------------------------
    @abc.abstractmethod
    async def list_mailboxes(self, account_id: int) -> list[Mailbox]: ...

    @abc.abstractmethod
    async def get_mailbox(self, account_id: int, name: str) -> Mailbox | None:
        """Find a mailbox; "INBOX" matches case-insensitively."""

    @abc.abstractmethod
    async def inbox_id(self, account_id: int) -> int | None:
        """The account's INBOX, where mail is delivered: the same mailbox for the account's
        whole life (INBOX is never deleted; renaming it moves its messages, not it)."""

    @abc.abstractmethod
    async def get_mailbox_by_id(self, mailbox_id: int) -> Mailbox | None: ...

    @abc.abstractmethod
    async def create_mailbox(
        self, account_id: int, name: str, special_use: str | None = None
    ) -> Mailbox:
        """Create a mailbox (AlreadyExists if taken).  Parents are not created implicitly;
        the IMAP layer decides that (RFC 9051 §6.3.4)."""

    @abc.abstractmethod
    async def delete_mailbox(self, account_id: int, name: str) -> None:
        """Delete a mailbox and its messages (Invalid for INBOX, NotFound if absent)."""

    @abc.abstractmethod
    async def rename_mailbox(self, account_id: int, old: str, new: str) -> None:
        """Rename a mailbox and its children.  Renaming INBOX moves its messages into a new
        mailbox ``new`` and leaves INBOX empty (RFC 9051 §6.3.6)."""

    @abc.abstractmethod
    async def set_subscribed(self, account_id: int, name: str, subscribed: bool) -> None:
        """Subscriptions may name mailboxes that do not exist (RFC 9051 §6.3.7)."""

    @abc.abstractmethod
    async def list_subscriptions(self, account_id: int) -> list[str]: ...

    @abc.abstractmethod
    async def status(self, mailbox_id: int) -> MailboxStatus: ...

    # -- messages ------------------------------------------------------------------------
    @abc.abstractmethod
    async def append(
        self,
        mailbox_id: int,
        data: bytes,
        flags: Iterable[str] = (),
        internaldate: float | None = None,
    ) -> AppendResult:
        """Store one message durably (parsed once here) and return its UID.
        Raises OverQuota, NotFound."""

    @abc.abstractmethod
    async def deliver(
        self, targets: Sequence[Delivery], data: bytes, internaldate: float | None = None
    ) -> list[AppendResult]:
        """Store one message into several mailboxes with one blob and one commit (SMTP
        delivery to several local recipients).  Quota is checked per target account."""

    @abc.abstractmethod
    async def message_flags(self, mailbox_id: int) -> list[MessageFlags]:
        """Every message of a mailbox in UID order: what SELECT needs to build its map.
        A backend may return a list carrying a ``highestmodseq`` attribute (the HIGHESTMODSEQ
        it was read at, as store.flagcache.FlagList does); SELECT then needs no second query
        to know the list is exact."""

    @abc.abstractmethod
    async def uids(self, mailbox_id: int) -> list[int]:
        """Every UID of a mailbox, ascending."""

    @abc.abstractmethod
    async def fetch(
        self, mailbox_id: int, uids: Sequence[int], *, meta: bool = True
    ) -> list[Message]:
        """Messages with their precomputed metadata, in UID order; absent uids are skipped.
        With ``meta`` false the caller does not read ``Message.meta``, which may then be
        empty for a message stored moments ago (nothing is parsed for it)."""

    @abc.abstractmethod
    async def read_blob(self, blob_id: str) -> bytes:
        """The exact bytes of a stored message."""

    async def read_blobs(self, blob_ids: Sequence[str]) -> list[bytes | None]:
        """The bytes of several stored messages, in order (None for one that is gone): a
        reader going through a mailbox in order (POP3 RETR) pays one store call per batch
        rather than per message.  Callers bound the batch's total size."""
        found: list[bytes | None] = []
        for blob_id in blob_ids:
            try:
                found.append(await self.read_blob(blob_id))
            except NotFound:
                found.append(None)
        return found

    async def message_sizes(self, mailbox_id: int) -> list[tuple[int, int, str, frozenset[str]]]:
        """(uid, size, blob id, flags) of every message in UID order, without the parsed
        metadata ``fetch`` carries: what a POP3 login snapshot needs."""
        uids = await self.uids(mailbox_id)
        rows: list[tuple[int, int, str, frozenset[str]]] = []
        for start in range(0, len(uids), 1000):
            for msg in await self.fetch(mailbox_id, uids[start : start + 1000]):
                rows.append((msg.uid, msg.size, msg.blob_id, msg.flags))
        return rows

    @abc.abstractmethod
    async def store_flags(
        self,
        mailbox_id: int,
        uids: Sequence[int],
        mode: FlagMode,
        flags: Iterable[str],
        unchangedsince: int | None = None,
    ) -> StoreResult:
        """Change flags; each changed message gets a new MODSEQ (RFC 7162)."""

    @abc.abstractmethod
    async def expunge(self, mailbox_id: int, uids: Sequence[int] | None = None) -> list[int]:
        """Expunge messages flagged \\Deleted (only those in ``uids`` when given) and
        return the expunged uids ascending."""

    @abc.abstractmethod
    async def copy(self, mailbox_id: int, uids: Sequence[int], dest_mailbox_id: int) -> CopyResult:
        """Copy messages keeping flags and internal date (OverQuota, NotFound)."""

    @abc.abstractmethod
    async def move(self, mailbox_id: int, uids: Sequence[int], dest_mailbox_id: int) -> CopyResult:
        """Copy then expunge atomically (RFC 6851)."""

    @abc.abstractmethod
    async def changes_since(self, mailbox_id: int, modseq: int) -> Changes:
        """Flag changes, new messages and expunges after ``modseq``."""

    @abc.abstractmethod
    async def claim_recent(self, mailbox_id: int) -> list[int]:
        """Return the uids that are \\Recent for the calling session and mark them claimed,
        so no other session sees them as recent (RFC 3501 §2.3.2)."""

    @abc.abstractmethod
    async def search(self, mailbox_id: int, query: Query) -> list[int]:
        """Uids (ascending) of the messages matching ``query``; TEXT/BODY use the
        full-text index."""
