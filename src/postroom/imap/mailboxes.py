"""Authenticated-state commands: SELECT/EXAMINE (with CONDSTORE/QRESYNC), CREATE (with
CREATE-SPECIAL-USE), DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST (LIST-EXTENDED,
SPECIAL-USE, CHILDREN, LIST-STATUS), LSUB, NAMESPACE, STATUS, APPEND (UIDPLUS, MULTIAPPEND)."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from postroom.imap import names, response, seqset, shared
from postroom.imap.core import State
from postroom.imap.names import NameError_
from postroom.imap.parser import Append, Command, Create, ListArgs, Rename, Select, StatusArgs
from postroom.imap.quota import deleted_storage, over_quota
from postroom.imap.view import MailboxView
from postroom.store.base import (
    AlreadyExists,
    AppendResult,
    FlagMode,
    Invalid,
    Mailbox,
    MailboxStatus,
    NotFound,
    OverQuota,
)

if TYPE_CHECKING:
    from postroom.imap.session import Session


MAX_CATCH_UP = 0.25  # beyond this share of changed messages a full read is cheaper


def _name(s: Session, raw: bytes) -> str:
    return names.decode(raw, s.utf8)


def _wire(s: Session, name: str) -> bytes:
    return names.encode(name, s.utf8)


def _no(cmd: Command, message: str, code: str | None = None) -> bytes:
    return response.tagged(cmd.tag, "NO", message, code)


async def _mailbox(s: Session, raw: bytes) -> Mailbox | None:
    assert s.account is not None
    return await s.store.get_mailbox(s.account.id, _name(s, raw))


def deselect(s: Session) -> None:
    """Leave the selected state; RFC 9051 §7.1 [CLOSED] tells the client where responses
    for the old mailbox stop."""
    if s.view is not None:
        s.view = None
        s.view_changed = False
        s.core.set_state(State.AUTHENTICATED)


# -- SELECT / EXAMINE ----------------------------------------------------------------------
async def cmd_select(s: Session, cmd: Command) -> bytes:
    args: Select = cmd.args
    if s.view is not None:
        deselect(s)
        s.send(response.ok("Previous mailbox is now closed", "CLOSED"))
    if args.qresync is not None and not s.qresync:
        return response.tagged(cmd.tag, "BAD", "QRESYNC is not enabled")  # RFC 7162 §3.2.5
    try:
        mb = await _mailbox(s, args.mailbox)
    except NameError_ as exc:
        return _no(cmd, str(exc), "CANNOT")
    if mb is None:
        return _no(cmd, "Mailbox does not exist", "NONEXISTENT")
    if args.condstore:
        s.condstore = True
    readonly = cmd.name == "EXAMINE"
    view = await _open_view(s, mb, readonly)
    view.condstore, view.qresync, view.rev2 = s.condstore, s.qresync, s.rev2
    uidnext = max(view.uidnext, view.uids[-1] + 1 if view.uids else 1)
    s.view = view
    s.core.set_state(State.SELECTED)
    # RFC 9051 §6.3.2 / RFC 3501 §6.3.1 responses.
    s.send(b"* %d EXISTS\r\n" % len(view))
    if not s.rev2:
        if not readonly:
            last = view.uids[-1] if view.uids else 0
            view.recent.update(await shared.claim_recent(s.store, mb.id, mb.uidvalidity, last))
        s.send(b"* %d RECENT\r\n" % len(view.recent))
    for line in view.flags_response():
        s.send(line)
    if not s.rev2:
        unseen = next((i for i, f in enumerate(view.flags) if "\\Seen" not in f), None)
        if unseen is not None:
            s.send(response.ok("First unseen", b"UNSEEN %d" % (unseen + 1)))
    s.send(response.ok("UIDs valid", b"UIDVALIDITY %d" % mb.uidvalidity))
    s.send(response.ok("Predicted next UID", b"UIDNEXT %d" % uidnext))
    s.send(response.ok("Highest", b"HIGHESTMODSEQ %d" % view.modseq))  # RFC 7162 §3.1.2.1
    if s.rev2:
        s.send(b'* LIST () "/" ' + _wire(s, mb.name) + b"\r\n")
    if args.qresync is not None and args.qresync.uidvalidity == mb.uidvalidity:
        await _qresync(s, view, args)
    code = "READ-ONLY" if readonly else "READ-WRITE"
    return response.tagged(cmd.tag, "OK", f"{cmd.name} completed", code)


async def _open_view(s: Session, mb: Mailbox, readonly: bool) -> MailboxView:
    """The mailbox as of its HIGHESTMODSEQ, unannounced: the snapshot other sessions of
    this process share, caught up with the changes since when they are few, else read from
    the store and made exact (the flag list may be newer than ``mb``: the changes since are
    folded in)."""
    share = shared.share(s.store, mb.id, mb.uidvalidity)
    snap = share.latest
    if snap is not None and snap.modseq <= mb.highestmodseq:
        view = MailboxView(
            mb.id, mb.uidvalidity, mb.uidnext, snap.modseq, readonly=readonly,
            share=share, snapshot=snap,
        )  # fmt: skip
        if snap.modseq == mb.highestmodseq:
            return view
        changes = await s.store.changes_since(mb.id, snap.modseq)
        if len(changes.changed) + len(changes.expunged) <= MAX_CATCH_UP * len(snap.uids):
            view.apply(changes, True, fresh=True)  # a catch-up, like QRESYNC's
            return view
    flags = await s.store.message_flags(mb.id)
    exact = getattr(flags, "highestmodseq", None) == mb.highestmodseq
    view = MailboxView(
        mb.id, mb.uidvalidity, mb.uidnext, mb.highestmodseq, flags, readonly,
        share=share, exact=exact,
    )  # fmt: skip
    if not exact:
        view.apply(await s.store.changes_since(mb.id, mb.highestmodseq), True, fresh=True)
    return view


async def _qresync(s: Session, view: MailboxView, args: Select) -> None:
    """RFC 7162 §3.2.5.1: VANISHED (EARLIER) then FETCH for what changed since the client's
    modseq, limited to the UIDs it says it knows."""
    q = args.qresync
    assert q is not None
    changes = await s.store.changes_since(view.mailbox_id, q.modseq)
    known = None
    if q.known_uids is not None:
        known = seqset.uid_ranges(q.known_uids, 0xFFFFFFFF)

    def is_known(uid: int) -> bool:
        return known is None or any(lo <= uid <= hi for lo, hi in known)

    vanished = [u for u in changes.expunged if is_known(u) and view.index(u) is None]
    if vanished:
        s.send(b"* VANISHED (EARLIER) " + response.number_set(vanished) + b"\r\n")
    for mf in changes.changed:
        i = view.index(mf.uid)
        if i is not None:
            s.send(view.fetch_flags_line(i))


# -- CREATE / DELETE / RENAME / SUBSCRIBE --------------------------------------------------
async def cmd_create(s: Session, cmd: Command) -> bytes:
    args: Create = cmd.args
    assert s.account is not None
    try:
        name = names.validate(_name(s, args.mailbox))
    except NameError_ as exc:
        return _no(cmd, str(exc), "CANNOT")
    if name == "INBOX":
        return _no(cmd, "INBOX always exists", "ALREADYEXISTS")
    if len(args.special_use) > 1:
        return _no(cmd, "One special-use attribute per mailbox", "USEATTR")  # RFC 6154 §3
    if await s.store.get_mailbox(s.account.id, name) is not None:
        return _no(cmd, "Mailbox already exists", "ALREADYEXISTS")
    try:
        await _create_parents(s, name)
        await s.store.create_mailbox(
            s.account.id, name, args.special_use[0] if args.special_use else None
        )
    except AlreadyExists:
        return _no(cmd, "Mailbox already exists", "ALREADYEXISTS")
    except Invalid as exc:
        return _no(cmd, str(exc) or "Cannot create this mailbox", "CANNOT")
    return response.tagged(cmd.tag, "OK", "CREATE completed")


async def _create_parents(s: Session, name: str) -> None:
    """RFC 9051 §6.3.4: superior hierarchical names are created as needed."""
    assert s.account is not None
    for parent in names.parents(name):
        if await s.store.get_mailbox(s.account.id, parent) is None:
            with contextlib.suppress(AlreadyExists):
                await s.store.create_mailbox(s.account.id, parent)


async def cmd_delete(s: Session, cmd: Command) -> bytes:
    assert s.account is not None
    try:
        name = _name(s, cmd.args)
    except NameError_ as exc:
        return _no(cmd, str(exc), "CANNOT")
    if name == "INBOX":
        return _no(cmd, "INBOX cannot be deleted", "CANNOT")  # RFC 9051 §6.3.5
    mb = await s.store.get_mailbox(s.account.id, name)
    if mb is None:
        return _no(cmd, "Mailbox does not exist", "NONEXISTENT")
    if any(m.name.startswith(name + names.SEP) for m in await s.store.list_mailboxes(s.account.id)):
        return _no(cmd, "Mailbox has children", "HASCHILDREN")  # RFC 9051 §6.3.5
    if s.view is not None and s.view.mailbox_id == mb.id:
        deselect(s)
        s.send(response.ok("Mailbox is now closed", "CLOSED"))
    try:
        await s.store.delete_mailbox(s.account.id, name)
    except NotFound:
        return _no(cmd, "Mailbox does not exist", "NONEXISTENT")
    except Invalid as exc:
        return _no(cmd, str(exc) or "Cannot delete this mailbox", "CANNOT")
    return response.tagged(cmd.tag, "OK", "DELETE completed")


async def cmd_rename(s: Session, cmd: Command) -> bytes:
    args: Rename = cmd.args
    assert s.account is not None
    try:
        old = _name(s, args.old)
        new = names.validate(_name(s, args.new))
    except NameError_ as exc:
        return _no(cmd, str(exc), "CANNOT")
    if await s.store.get_mailbox(s.account.id, old) is None:
        return _no(cmd, "Mailbox does not exist", "NONEXISTENT")
    if await s.store.get_mailbox(s.account.id, new) is not None:
        return _no(cmd, "Target mailbox already exists", "ALREADYEXISTS")
    if new.startswith(old + names.SEP):
        return _no(cmd, "Cannot move a mailbox into itself", "CANNOT")
    try:
        await _create_parents(s, new)
        await s.store.rename_mailbox(s.account.id, old, new)
    except AlreadyExists:
        return _no(cmd, "Target mailbox already exists", "ALREADYEXISTS")
    except NotFound:
        return _no(cmd, "Mailbox does not exist", "NONEXISTENT")
    except Invalid as exc:
        return _no(cmd, str(exc) or "Cannot rename this mailbox", "CANNOT")
    return response.tagged(cmd.tag, "OK", "RENAME completed")


async def cmd_subscribe(s: Session, cmd: Command) -> bytes:
    assert s.account is not None
    try:
        name = _name(s, cmd.args)
    except NameError_ as exc:
        return _no(cmd, str(exc), "CANNOT")
    subscribe = cmd.name == "SUBSCRIBE"
    if subscribe and await s.store.get_mailbox(s.account.id, name) is None:
        return _no(cmd, "Mailbox does not exist", "NONEXISTENT")
    await s.store.set_subscribed(s.account.id, name, subscribe)
    return response.tagged(cmd.tag, "OK", f"{cmd.name} completed")


# -- LIST / LSUB / NAMESPACE / STATUS --------------------------------------------------------
async def cmd_list(s: Session, cmd: Command) -> bytes:
    args: ListArgs = cmd.args
    assert s.account is not None
    try:
        reference = _name(s, args.reference) if args.reference else ""
        patterns = [names.pattern(reference, _name(s, p)) for p in args.patterns if p]
    except NameError_ as exc:
        return response.tagged(cmd.tag, "BAD", str(exc))
    if not patterns and not args.lsub:
        # RFC 9051 §6.3.9: an empty pattern asks for the hierarchy delimiter.
        s.send(b'* LIST (\\Noselect) "/" ""\r\n')
        return response.tagged(cmd.tag, "OK", "LIST completed")
    mailboxes = {m.name: m for m in await s.store.list_mailboxes(s.account.id)}
    want_subs = args.lsub or "SUBSCRIBED" in args.selection or "SUBSCRIBED" in args.returns
    subscribed = set(await s.store.list_subscriptions(s.account.id)) if want_subs else set()
    has_children: set[str] = set()
    for name in mailboxes:
        has_children.update(names.parents(name))
    verb = b"LSUB" if args.lsub else b"LIST"

    def matches(name: str) -> bool:
        return any(p.fullmatch(name) for p in patterns)

    if args.lsub or "SUBSCRIBED" in args.selection:
        candidates = set(subscribed)
        sub_parents: set[str] = set()
        for name in subscribed:
            sub_parents.update(names.parents(name))
        if args.lsub or "RECURSIVEMATCH" in args.selection:
            candidates |= {p for p in sub_parents if matches(p)}
    else:
        candidates = set(mailboxes) | has_children
        sub_parents = set()
    lines: list[bytes] = []
    for name in sorted(candidates, key=lambda n: (n != "INBOX", n)):
        if not matches(name):
            continue
        mb = mailboxes.get(name)
        if "SPECIAL-USE" in args.selection and (mb is None or mb.special_use is None):
            continue
        attrs: list[str] = []
        extra = b""
        if args.lsub:
            if name not in subscribed:
                attrs.append("\\Noselect")
        else:
            if mb is None:
                attrs.append("\\NonExistent" if args.extended else "\\Noselect")
            if name in subscribed and (
                "SUBSCRIBED" in args.returns or "SUBSCRIBED" in args.selection
            ):
                attrs.append("\\Subscribed")
            elif "SUBSCRIBED" in args.selection:
                # a parent reported only through RECURSIVEMATCH (RFC 5258 §3.5)
                extra = b' ("CHILDINFO" ("SUBSCRIBED"))'
            if mb is not None or name in has_children:
                attrs.append("\\HasChildren" if name in has_children else "\\HasNoChildren")
            if mb is not None and mb.special_use:
                attrs.append(mb.special_use)
        line = verb + b" " + response.flag_list(attrs) + b' "/" ' + _wire(s, name) + extra
        lines.append(response.untagged(line))
        if args.status_items and mb is not None:
            st = await s.store.status(mb.id)
            extra = await _extra_status(s, mb.id, args.status_items)
            lines.append(_status_line(s, mb.name, st, args.status_items, extra))
    for line in lines:
        s.send(line)
    return response.tagged(cmd.tag, "OK", f"{verb.decode()} completed")


async def cmd_namespace(s: Session, cmd: Command) -> bytes:
    s.send(b'* NAMESPACE (("" "/")) NIL NIL\r\n')  # RFC 2342: one personal namespace
    return response.tagged(cmd.tag, "OK", "NAMESPACE completed")


async def _extra_status(s: Session, mailbox_id: int, items: tuple[str, ...]) -> dict[str, int]:
    """STATUS items MailboxStatus does not carry."""
    if "DELETED-STORAGE" in items:
        return {"DELETED-STORAGE": await deleted_storage(s, mailbox_id)}
    return {}


def _status_line(
    s: Session, name: str, st: MailboxStatus, items: tuple[str, ...], extra: dict[str, int]
) -> bytes:
    values = {
        **extra,
        "MESSAGES": st.messages,
        "UIDNEXT": st.uidnext,
        "UIDVALIDITY": st.uidvalidity,
        "UNSEEN": st.unseen,
        "DELETED": st.deleted,
        "SIZE": st.size,
        "RECENT": st.recent,
        "HIGHESTMODSEQ": st.highestmodseq,
    }
    seen: set[str] = set()
    parts = []
    for item in items:
        if item not in seen:
            seen.add(item)
            parts.append(b"%s %d" % (item.encode(), values[item]))
    return response.untagged(b"STATUS " + _wire(s, name) + b" " + response.paren(parts))


async def cmd_status(s: Session, cmd: Command) -> bytes:
    args: StatusArgs = cmd.args
    try:
        mb = await _mailbox(s, args.mailbox)
    except NameError_ as exc:
        return _no(cmd, str(exc), "CANNOT")
    if mb is None:
        return _no(cmd, "Mailbox does not exist", "NONEXISTENT")
    if "HIGHESTMODSEQ" in args.items:
        s.condstore = True  # RFC 7162 §3.1: a CONDSTORE-enabling command
    st = await s.store.status(mb.id)
    s.send(_status_line(s, mb.name, st, args.items, await _extra_status(s, mb.id, args.items)))
    return response.tagged(cmd.tag, "OK", "STATUS completed")


# -- APPEND --------------------------------------------------------------------------------
async def cmd_append(s: Session, cmd: Command) -> bytes:
    """APPEND (RFC 9051 §6.3.12) with MULTIAPPEND (RFC 3502): several messages are stored in
    order and acknowledged together; if one is refused, those already stored are expunged
    again, so the command appends all of them or none (RFC 3502 §6.3.11)."""
    args: Append = cmd.args
    try:
        mb = await _mailbox(s, args.mailbox)
    except NameError_ as exc:
        return _no(cmd, str(exc), "CANNOT")
    if mb is None:
        return _no(cmd, "Mailbox does not exist", "TRYCREATE")  # RFC 9051 §6.3.12
    if any(not m.data for m in args.messages):
        return _no(cmd, "Empty message", "CANNOT")
    stored: list[AppendResult] = []
    try:
        for m in args.messages:
            flags = [f for f in m.flags if f != "\\Recent"]
            stored.append(await s.store.append(mb.id, m.data, flags, m.date))
    except (OverQuota, NotFound, Invalid) as exc:
        await _undo_append(s, mb.id, stored)
        if isinstance(exc, OverQuota):
            return await over_quota(s, cmd)
        if isinstance(exc, NotFound):
            return _no(cmd, "Mailbox does not exist", "TRYCREATE")
        return _no(cmd, str(exc) or "Message refused", "CANNOT")
    except BaseException:
        await _undo_append(s, mb.id, stored)
        raise
    if s.view is not None and s.view.mailbox_id == mb.id:
        s.view_changed = True
    # RFC 4315 §3 / RFC 3502: APPENDUID uidvalidity uid-set, the UIDs in message order.
    uids = response.uid_list([r.uid for r in stored])
    code = b"APPENDUID %d %s" % (stored[-1].uidvalidity, uids)
    return response.tagged(cmd.tag, "OK", "APPEND completed", code)


async def _undo_append(s: Session, mailbox_id: int, stored: list[AppendResult]) -> None:
    """Expunge the messages of a MULTIAPPEND that could not be completed."""
    if not stored:
        return
    uids = [r.uid for r in stored]
    try:
        await s.store.store_flags(mailbox_id, uids, FlagMode.ADD, ["\\Deleted"])
        await s.store.expunge(mailbox_id, uids)
    except NotFound:
        pass  # the mailbox went away with them


HANDLERS = {
    "SELECT": cmd_select,
    "EXAMINE": cmd_select,
    "CREATE": cmd_create,
    "DELETE": cmd_delete,
    "RENAME": cmd_rename,
    "SUBSCRIBE": cmd_subscribe,
    "UNSUBSCRIBE": cmd_subscribe,
    "LIST": cmd_list,
    "LSUB": cmd_list,
    "NAMESPACE": cmd_namespace,
    "STATUS": cmd_status,
    "APPEND": cmd_append,
}
