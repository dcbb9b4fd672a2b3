"""Selected-state commands: FETCH, STORE, SEARCH (ESEARCH, SEARCHRES), COPY, MOVE, EXPUNGE,
UID EXPUNGE, CLOSE, UNSELECT, CHECK — and their UID forms."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from postroom.imap import names, response, seqset
from postroom.imap.fetch import CACHE, META, FetchArgs, FetchAtt
from postroom.imap.fetchresp import UnknownCte, render_item
from postroom.imap.mailboxes import deselect
from postroom.imap.names import NameError_
from postroom.imap.parser import Command, CopyArgs, StoreArgs
from postroom.imap.quota import over_quota
from postroom.imap.search import SearchArgs, flag_predicate, resolve, uses_modseq
from postroom.imap.seqset import OutOfRange, SeqSet
from postroom.imap.view import MailboxView
from postroom.mime import ParsedMessage
from postroom.store.base import FlagMode, Message, NotFound, OverQuota

if TYPE_CHECKING:
    from postroom.imap.session import Session

BATCH = 1024  # messages per store round trip while streaming FETCH of metadata
BLOB_BATCH = 256  # ... and of message bodies
CACHE_BATCH = 4096  # messages per write when FETCH is answered from the view alone
_UID_ITEM = FetchAtt("UID", CACHE, label=b"UID")
_MODSEQ_ITEM = FetchAtt("MODSEQ", CACHE, label=b"MODSEQ")
_MODES = {"+": FlagMode.ADD, "-": FlagMode.REMOVE, "": FlagMode.REPLACE}


class BadSet(Exception):
    pass


def _view(s: Session) -> MailboxView:
    assert s.view is not None
    return s.view


def _positions(s: Session, ss: SeqSet, uid: bool) -> list[tuple[int, int]]:
    """Position ranges of a sequence set; ``$`` is the saved SEARCH result (RFC 5182)."""
    view = _view(s)
    if ss.saved:
        idx = sorted(i for u in view.saved if (i := view.index(u)) is not None)
        return [(i, i + 1) for i in idx]
    if uid:
        return seqset.uid_positions(ss, view.uids)
    try:
        return seqset.seq_positions(ss, len(view))
    except OutOfRange:
        raise BadSet from None


def _bad_set(cmd: Command) -> bytes:
    return response.tagged(cmd.tag, "BAD", "Invalid message sequence number")


def _enable_condstore(s: Session) -> None:
    s.condstore = True
    _view(s).condstore = True


# -- FETCH ---------------------------------------------------------------------------------
async def cmd_fetch(s: Session, cmd: Command) -> bytes:
    args: FetchArgs = cmd.args
    view = _view(s)
    uid_cmd = cmd.name == "UID FETCH"
    try:
        ranges = _positions(s, args.seqset, uid_cmd)
    except BadSet:
        return _bad_set(cmd)
    items = list(args.items)
    if uid_cmd and not any(i.kind == "UID" for i in items):
        items.insert(0, _UID_ITEM)
    if args.changedsince is not None and not any(i.kind == "MODSEQ" for i in items):
        items.append(_MODSEQ_ITEM)  # RFC 7162 §3.1.4.1
    if any(i.kind == "MODSEQ" for i in items):
        _enable_condstore(s)
    if args.vanished:
        if not uid_cmd or not s.qresync:
            return response.tagged(cmd.tag, "BAD", "VANISHED needs UID FETCH and QRESYNC")
        await _vanished_earlier(s, args)
    sets_seen = not view.readonly and any(i.sets_seen for i in items)
    needs_row = any(i.source != CACHE for i in items)
    needs_meta = any(i.source >= META for i in items)
    needs_blob = any(i.source > META for i in items)
    flags_asked = any(i.kind == "FLAGS" for i in items)
    ghosts = False
    store = s.store
    step = (BLOB_BATCH if needs_blob else BATCH) if needs_row else CACHE_BATCH
    batches = []
    for lo, hi in ranges:
        for start in range(lo, hi, step):
            idxs = range(start, min(hi, start + step))
            if args.changedsince is not None:
                since = args.changedsince
                idxs = [i for i in idxs if view.modseqs[i] > since]
            if idxs:
                batches.append(idxs)

    async def rows_of(idxs) -> dict[int, Message]:  # noqa: ANN001
        uids = list(map(view.uids.__getitem__, idxs))
        return {m.uid: m for m in await store.fetch(view.mailbox_id, uids, meta=needs_meta)}

    # The next batch is read while this one is rendered (not when reading marks \Seen:
    # the store write comes first).
    ahead: asyncio.Future[dict[int, Message]] | None = None
    try:
        for k, idxs in enumerate(batches):
            seen_now: set[int] = set()
            if sets_seen:
                seen_now = await _mark_seen(s, view, idxs)
            if not needs_row:
                s.send(_cache_lines(view, idxs, items, seen_now))
                await s.flush()
                continue
            if ahead is not None:
                rows = await ahead
                ahead = None
            else:
                rows = await rows_of(idxs)
            if not sets_seen and k + 1 < len(batches):
                ahead = asyncio.ensure_future(rows_of(batches[k + 1]))
            for i in idxs:
                uid = view.uids[i]
                parts = []
                msg = rows.get(uid)
                if msg is None:
                    ghosts = True  # expunged by another session, not yet announced
                    continue
                parsed = ParsedMessage.from_bytes(msg.meta) if needs_meta else None
                blob = await store.read_blob(msg.blob_id) if needs_blob else None
                for item in items:
                    kind = item.kind
                    if kind == "UID":
                        parts.append(b"UID %d" % uid)
                    elif kind == "FLAGS":
                        parts.append(b"FLAGS " + view.flags_of(i))
                    elif kind == "MODSEQ":
                        parts.append(b"MODSEQ (%d)" % view.modseqs[i])
                    else:
                        try:
                            parts.append(render_item(item, msg, parsed, blob))
                        except UnknownCte:
                            return response.tagged(
                                cmd.tag, "NO", "Unknown transfer encoding", "UNKNOWN-CTE"
                            )
                if i in seen_now and not flags_asked:
                    parts.append(b"FLAGS " + view.flags_of(i))  # RFC 9051 §6.4.5 \Seen
                s.send(b"* %d FETCH (" % (i + 1) + b" ".join(parts) + b")\r\n")
            await s.flush()
    finally:
        if ahead is not None:
            ahead.cancel()
    if ghosts and not uid_cmd:
        # RFC 2180 §4.1.2: answer what exists, then say some messages are gone.
        return response.tagged(cmd.tag, "NO", "Some messages were expunged", "EXPUNGEISSUED")
    return response.tagged(cmd.tag, "OK", f"{cmd.name} completed")


def _cache_lines(view: MailboxView, idxs, items: list[FetchAtt], seen: set[int]) -> bytes:  # noqa: ANN001
    """FETCH lines answered from the session's cache alone (UID, FLAGS, MODSEQ): the hot
    path of every client's resynchronisation, built column by column with one format per
    message."""
    kinds = [i.kind for i in items]
    fields = [b"UID %d" if k == "UID" else b"FLAGS %s" if k == "FLAGS" else b"MODSEQ (%d)"
              for k in kinds]  # fmt: skip
    template = b"* %d FETCH (" + b" ".join(fields) + b")\r\n"
    if isinstance(idxs, range):
        numbers = range(idxs.start + 1, idxs.stop + 1)

        def column(seq):  # noqa: ANN001, ANN202
            return seq[idxs.start : idxs.stop]
    else:
        numbers = [i + 1 for i in idxs]

        def column(seq):  # noqa: ANN001, ANN202
            return [seq[i] for i in idxs]

    def flag_column() -> list[bytes]:
        if view.recent and not view.rev2:
            return [view.flags_of(i) for i in idxs]  # \Recent for rev1 (RFC 3501 §2.3.2)
        render = view.share.render
        rendered: dict[frozenset[str], bytes] = {}
        out = []
        for flags in column(view.flags):
            r = rendered.get(flags)
            if r is None:
                r = rendered[flags] = render(flags)
            out.append(r)
        return out

    columns = [column(view.uids) if k == "UID" else flag_column() if k == "FLAGS" else
               column(view.modseqs) for k in kinds]  # fmt: skip
    lines = list(map(template.__mod__, zip(numbers, *columns, strict=True)))
    if seen and "FLAGS" not in kinds:
        # RFC 9051 §6.4.5: a \Seen set by this FETCH is reported
        extra = template[:-3] + b" FLAGS %s)\r\n"
        for n, i in enumerate(idxs):
            if i in seen:
                values = tuple(c[n] for c in columns)
                lines[n] = extra % (i + 1, *values, view.flags_of(i))
    return b"".join(lines)


async def _mark_seen(s: Session, view: MailboxView, idxs) -> set[int]:  # noqa: ANN001
    """BODY[...] without PEEK sets \\Seen (RFC 9051 §6.4.5) before the data is sent."""
    unseen = [view.uids[i] for i in idxs if "\\Seen" not in view.flags[i]]
    if not unseen:
        return set()
    result = await s.store.store_flags(view.mailbox_id, unseen, FlagMode.ADD, ["\\Seen"])
    s.note_own(mf.modseq for mf in result.updated)
    changed = set()
    for mf in result.updated:
        i = view.index(mf.uid)
        if i is not None:
            view.set_flags(i, mf.flags, mf.modseq)
            changed.add(i)
    return changed


async def _vanished_earlier(s: Session, args: FetchArgs) -> None:
    """RFC 7162 §3.2.6: UID FETCH ... (CHANGEDSINCE m VANISHED) reports expunged UIDs in the
    set whose expunge is newer than m."""
    view = _view(s)
    assert args.changedsince is not None
    changes = await s.store.changes_since(view.mailbox_id, args.changedsince)
    top = view.uids[-1] if view.uids else 0
    ranges = seqset.uid_ranges(args.seqset, top) if not args.seqset.saved else []
    gone = [u for u in changes.expunged if any(lo <= u <= hi for lo, hi in ranges)]
    if gone:
        s.send(b"* VANISHED (EARLIER) " + response.number_set(gone) + b"\r\n")


# -- STORE ---------------------------------------------------------------------------------
async def cmd_store(s: Session, cmd: Command) -> bytes:
    args: StoreArgs = cmd.args
    view = _view(s)
    uid_cmd = cmd.name == "UID STORE"
    try:
        ranges = _positions(s, args.seqset, uid_cmd)
    except BadSet:
        return _bad_set(cmd)
    if view.readonly:
        return response.tagged(cmd.tag, "NO", "Mailbox is read-only", "READ-ONLY")
    if args.unchangedsince is not None:
        _enable_condstore(s)
    flags = [f for f in args.flags if f != "\\Recent"]  # \Recent is not settable
    idxs = list(seqset.positions(ranges))
    uids = [view.uids[i] for i in idxs if view.uids[i] not in view.pending_expunge]
    result = await s.store.store_flags(
        view.mailbox_id, uids, _MODES[args.mode], flags, args.unchangedsince
    )
    s.note_own(mf.modseq for mf in result.updated)
    changed: set[int] = set()
    new_keywords = False
    for mf in result.updated:
        i = view.index(mf.uid)
        if i is not None:
            new_keywords |= view.set_flags(i, mf.flags, mf.modseq)
            changed.add(i)
    if new_keywords:
        for line in view.flags_response():
            s.send(line)
    failed = set(result.failed_unchangedsince)
    for i in idxs:
        uid = view.uids[i]
        if uid in failed or uid in view.pending_expunge:
            continue
        if args.silent and not (i in changed and s.condstore):
            continue
        parts = [b"UID %d" % uid] if uid_cmd else []
        if not args.silent:
            parts.append(b"FLAGS " + view.flags_of(i))
        if s.condstore:
            parts.append(b"MODSEQ (%d)" % view.modseqs[i])  # RFC 7162 §3.1.3
        s.send(b"* %d FETCH (" % (i + 1) + b" ".join(parts) + b")\r\n")
    if failed:
        # RFC 7162 §3.1.3: [MODIFIED set] lists what UNCHANGEDSINCE refused.
        nums = sorted(
            u if uid_cmd else view.index(u) + 1 for u in failed if view.index(u) is not None
        )
        code = b"MODIFIED " + response.number_set(nums)
        return response.tagged(cmd.tag, "OK", "Conditional STORE failed", code)
    return response.tagged(cmd.tag, "OK", f"{cmd.name} completed")


# -- SEARCH --------------------------------------------------------------------------------
async def search_positions(s: Session, query: object) -> list[int]:
    """Positions (ascending) of the messages matching a parsed SEARCH query; flag-only
    queries are answered from the session's cache.  Raises OutOfRange."""
    view = _view(s)
    recent = sorted(view.recent) if not s.rev2 else []
    resolved = resolve(query, view.uids, view.saved, recent)
    if uses_modseq(query):
        _enable_condstore(s)
    predicate = flag_predicate(resolved)
    if predicate is not None:
        return view.matching(predicate)
    found = await s.store.search(view.mailbox_id, resolved)
    return [i for u in found if (i := view.index(u)) is not None]


async def cmd_search(s: Session, cmd: Command) -> bytes:
    args: SearchArgs = cmd.args
    view = _view(s)
    uid_cmd = cmd.name == "UID SEARCH"
    if args.charset not in (None, "UTF-8", "US-ASCII"):
        return response.tagged(cmd.tag, "NO", "Unsupported charset", "BADCHARSET (UTF-8 US-ASCII)")
    try:
        idxs = await search_positions(s, args.query)
    except OutOfRange:
        return _bad_set(cmd)
    with_modseq = uses_modseq(args.query)
    uids = list(map(view.uids.__getitem__, idxs))
    numbers = uids if uid_cmd else [i + 1 for i in idxs]
    modseq = max(map(view.modseqs.__getitem__, idxs), default=0) if with_modseq else 0
    returns = args.returns
    if returns is None and s.rev2:
        returns = ("ALL",)  # RFC 9051 §6.4.4: IMAP4rev2 answers with ESEARCH
    if returns is None:
        line = b"SEARCH"
        if numbers:
            line += b" " + " ".join(map(str, numbers)).encode()
            if with_modseq:
                line += b" (MODSEQ %d)" % modseq  # RFC 7162 §3.1.5
        s.send(response.untagged(line))
        return response.tagged(cmd.tag, "OK", f"{cmd.name} completed")
    opts = set(returns) or {"ALL"}
    if "SAVE" in opts:
        # RFC 5182 §2.4: with only MIN and/or MAX, SAVE keeps just those.
        opts.discard("SAVE")
        if opts and opts <= {"MIN", "MAX"} and uids:
            keep = {uids[0]} if "MIN" in opts else set()
            if "MAX" in opts:
                keep.add(uids[-1])
            view.saved = sorted(keep)
        else:
            view.saved = uids
        if not opts:
            return response.tagged(cmd.tag, "OK", f"{cmd.name} completed")
    line = b'ESEARCH (TAG "' + cmd.tag.encode() + b'")'
    if uid_cmd:
        line += b" UID"
    if numbers:
        if "MIN" in opts:
            line += b" MIN %d" % numbers[0]
        if "MAX" in opts:
            line += b" MAX %d" % numbers[-1]
        if "ALL" in opts:
            line += b" ALL " + response.number_set(numbers)
    if "COUNT" in opts:
        line += b" COUNT %d" % len(numbers)
    if with_modseq and numbers:
        line += b" MODSEQ %d" % modseq  # RFC 7162 §3.1.5
    s.send(response.untagged(line))
    return response.tagged(cmd.tag, "OK", f"{cmd.name} completed")


# -- COPY / MOVE ---------------------------------------------------------------------------
async def cmd_copy(s: Session, cmd: Command) -> bytes:
    args: CopyArgs = cmd.args
    view = _view(s)
    uid_cmd = cmd.name.startswith("UID ")
    move = cmd.name.endswith("MOVE")
    try:
        ranges = _positions(s, args.seqset, uid_cmd)
    except BadSet:
        return _bad_set(cmd)
    assert s.account is not None
    try:
        dest = await s.store.get_mailbox(s.account.id, names.decode(args.mailbox, s.utf8))
    except NameError_ as exc:
        return response.tagged(cmd.tag, "NO", str(exc), "CANNOT")
    if dest is None:
        return response.tagged(cmd.tag, "NO", "Mailbox does not exist", "TRYCREATE")
    if move and view.readonly:
        return response.tagged(cmd.tag, "NO", "Mailbox is read-only", "READ-ONLY")
    uids = [view.uids[i] for i in seqset.positions(ranges)]
    if not uids:
        return response.tagged(cmd.tag, "OK", "No messages")
    try:
        if move:
            result = await s.store.move(view.mailbox_id, uids, dest.id)
        else:
            result = await s.store.copy(view.mailbox_id, uids, dest.id)
    except OverQuota:
        return await over_quota(s, cmd)
    except NotFound:
        return response.tagged(cmd.tag, "NO", "Mailbox does not exist", "TRYCREATE")
    if dest.id == view.mailbox_id:
        s.view_changed = True
    code = None
    if result.source_uids:
        code = b"COPYUID %d %s %s" % (
            result.uidvalidity,
            response.uid_list(result.source_uids),
            response.uid_list(result.dest_uids),
        )
    if move:
        # RFC 6851 §4.3: COPYUID in an untagged OK, then the expunges, then the tagged OK.
        if code:
            s.send(response.ok("Moved", code))
        for line in view.expunge(result.source_uids):
            s.send(line)
        s.view_changed = True  # resynchronise alone: the view rejoins the shared snapshot
        return response.tagged(cmd.tag, "OK", f"{cmd.name} completed")
    if len(result.source_uids) < len(uids) and not uid_cmd:
        return response.tagged(cmd.tag, "NO", "Some messages were expunged", "EXPUNGEISSUED")
    return response.tagged(cmd.tag, "OK", f"{cmd.name} completed", code)


# -- EXPUNGE / CLOSE / UNSELECT / CHECK ----------------------------------------------------
async def cmd_expunge(s: Session, cmd: Command) -> bytes:
    view = _view(s)
    if view.readonly:
        return response.tagged(cmd.tag, "NO", "Mailbox is read-only", "READ-ONLY")
    uids = None
    if cmd.name == "UID EXPUNGE":
        uids = [view.uids[i] for i in seqset.positions(_positions(s, cmd.args, True))]
        if not uids:
            return response.tagged(cmd.tag, "OK", "UID EXPUNGE completed")
    gone = await s.store.expunge(view.mailbox_id, uids)
    for line in view.expunge(gone):
        s.send(line)
    s.view_changed = True
    return response.tagged(cmd.tag, "OK", f"{cmd.name} completed")


async def cmd_close(s: Session, cmd: Command) -> bytes:
    """RFC 9051 §6.4.1: expunge silently (no EXPUNGE responses) unless read-only."""
    view = _view(s)
    if not view.readonly and cmd.name == "CLOSE":
        await s.store.expunge(view.mailbox_id)
    deselect(s)
    return response.tagged(cmd.tag, "OK", f"{cmd.name} completed")


async def cmd_check(s: Session, cmd: Command) -> bytes:
    return response.tagged(cmd.tag, "OK", "CHECK completed")


HANDLERS = {
    "FETCH": cmd_fetch,
    "UID FETCH": cmd_fetch,
    "STORE": cmd_store,
    "UID STORE": cmd_store,
    "SEARCH": cmd_search,
    "UID SEARCH": cmd_search,
    "COPY": cmd_copy,
    "UID COPY": cmd_copy,
    "MOVE": cmd_copy,
    "UID MOVE": cmd_copy,
    "EXPUNGE": cmd_expunge,
    "UID EXPUNGE": cmd_expunge,
    "CLOSE": cmd_close,
    "UNSELECT": cmd_close,
    "CHECK": cmd_check,
}
