"""QUOTA (RFC 9208): GETQUOTA, GETQUOTAROOT, SETQUOTA (refused), DELETED-STORAGE, and the
untagged QUOTA sent with an [OVERQUOTA] refusal.

An account has one quota root, named "" (RFC 9208 §3.2: the name is opaque), covering every
mailbox.  Only the STORAGE resource has a limit (``Account.quota``), so only STORAGE is
reported: a QUOTA response lists resources *with* a limit (RFC 9208 §5.1), and an account
without a quota has no quota root at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from postroom.imap import names, response
from postroom.imap.names import NameError_
from postroom.imap.parser import Command
from postroom.store.query import HasFlag

if TYPE_CHECKING:
    from postroom.imap.session import Session

ROOT = b""
BATCH = 512  # messages per store round trip when summing \Deleted sizes


def kib(octets: int) -> int:
    """RFC 9208 §5.1: STORAGE counts units of 1024 octets (a partly used unit counts)."""
    return (octets + 1023) // 1024


async def quota_line(s: Session) -> bytes | None:
    """``* QUOTA "" (STORAGE used limit)``, or None when the account is unlimited."""
    assert s.account is not None
    account = await s.store.get_account_by_id(s.account.id)
    if account is None or account.quota is None:
        return None
    used = await s.store.usage(account.id)
    storage = b"STORAGE %d %d" % (kib(used.bytes), account.quota // 1024)
    return response.untagged(b"QUOTA " + response.string(ROOT) + b" (" + storage + b")")


async def deleted_storage(s: Session, mailbox_id: int) -> int:
    """STATUS DELETED-STORAGE (RFC 9208 §4.2): KiB an EXPUNGE would free in the mailbox."""
    uids = await s.store.search(mailbox_id, HasFlag("\\Deleted"))
    total = 0
    for start in range(0, len(uids), BATCH):
        total += sum(
            m.size for m in await s.store.fetch(mailbox_id, uids[start : start + BATCH], meta=False)
        )
    return kib(total)


async def cmd_getquotaroot(s: Session, cmd: Command) -> bytes:
    """RFC 9208 §4.1.2: the mailbox's quota roots, then each root's QUOTA."""
    assert s.account is not None
    try:
        mb = await s.store.get_mailbox(s.account.id, names.decode(cmd.args, s.utf8))
    except NameError_ as exc:
        return response.tagged(cmd.tag, "NO", str(exc), "CANNOT")
    if mb is None:
        return response.tagged(cmd.tag, "NO", "Mailbox does not exist", "NONEXISTENT")
    line = await quota_line(s)
    root = b" " + response.string(ROOT) if line is not None else b""
    s.send(response.untagged(b"QUOTAROOT " + names.encode(mb.name, s.utf8) + root))
    if line is not None:
        s.send(line)
    return response.tagged(cmd.tag, "OK", "GETQUOTAROOT completed")


async def cmd_getquota(s: Session, cmd: Command) -> bytes:
    """RFC 9208 §4.1.1."""
    line = await quota_line(s) if cmd.args == ROOT else None
    if line is None:
        return response.tagged(cmd.tag, "NO", "No such quota root", "NONEXISTENT")
    s.send(line)
    return response.tagged(cmd.tag, "OK", "GETQUOTA completed")


async def cmd_setquota(s: Session, cmd: Command) -> bytes:
    """RFC 9208 §4.1.3: limits are the administrator's (``postroom user quota``); QUOTASET
    is not advertised."""
    return response.tagged(cmd.tag, "NO", "Quotas are set by the administrator", "NOPERM")


async def over_quota(s: Session, cmd: Command) -> bytes:
    """NO [OVERQUOTA] for APPEND/COPY/MOVE, preceded by the root's usage (RFC 9208 §4.3)."""
    line = await quota_line(s)
    if line is not None:
        s.send(line)
    return response.tagged(cmd.tag, "NO", "Quota exceeded", "OVERQUOTA")


HANDLERS = {
    "GETQUOTA": cmd_getquota,
    "GETQUOTAROOT": cmd_getquotaroot,
    "SETQUOTA": cmd_setquota,
}
