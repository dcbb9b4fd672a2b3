"""THREAD=ORDEREDSUBJECT and THREAD=REFERENCES (RFC 5256 §3, the JWZ algorithm), sans-IO.

Every walk over the thread forest is iterative: reference chains are as deep as the
mailbox is long, and a hostile mailbox must not exhaust the Python stack.  Loop checks are
bounded too (a link whose check exceeds MAX_WALK is not made).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from postroom.imap.sort import SortInfo, derived
from postroom.imap.subject import base_subject

MAX_WALK = 65536  # ancestors visited by one loop check


class Node:
    """A container: a message, or a dummy (``info`` None) standing for a referenced id."""

    __slots__ = ("info", "parent", "children", "key")

    def __init__(self, info: SortInfo | None) -> None:
        self.info = info
        self.parent: Node | None = None
        self.children: list[Node] = []
        self.key: tuple[float, int] = (0.0, 0)


def _unlink(child: Node) -> None:
    if child.parent is not None:
        child.parent.children.remove(child)
        child.parent = None


def _link(parent: Node, child: Node) -> None:
    _unlink(child)
    child.parent = parent
    parent.children.append(child)


def _would_loop(parent: Node, child: Node) -> bool:
    """Whether making ``child`` a child of ``parent`` closes a loop (``child`` is ``parent``
    or one of its ancestors).  A child without children cannot be an ancestor: no walk."""
    if parent is child:
        return True
    if not child.children:
        return False
    node: Node | None = parent
    for _ in range(MAX_WALK):
        if node is None:
            return False
        if node is child:
            return True
        node = node.parent
    return True


def _postorder(roots: Iterable[Node]) -> list[Node]:
    """Every node after all its descendants."""
    order: list[Node] = []
    stack = list(roots)
    while stack:
        node = stack.pop()
        order.append(node)
        stack.extend(node.children)
    order.reverse()
    return order


def _sort_siblings(roots: list[Node]) -> None:
    """Sort each set of siblings by sent date, then sequence number; a dummy sorts as its
    first child (RFC 5256 §3 REFERENCES steps 4 and 7)."""
    for node in _postorder(roots):
        if len(node.children) > 1:
            node.children.sort(key=_key)
        if node.info is not None:
            node.key = (node.info.sent, node.info.pos)
        elif node.children:
            node.key = node.children[0].key
    roots.sort(key=_key)


def _key(node: Node) -> tuple[float, int]:
    return node.key


def _message(node: Node) -> SortInfo | None:
    return (
        node.info if node.info is not None else (node.children[0].info if node.children else None)
    )


def references(infos: Sequence[SortInfo]) -> list[Node]:
    """THREAD=REFERENCES: threads by In-Reply-To/References, then merged by base subject."""
    table: dict[str, Node] = {}
    nodes: list[Node] = []
    for info in sorted(infos, key=lambda i: i.pos):
        # (1.A) the message's own container; a duplicate Message-ID gets a unique one
        mid = info.message_id
        node = table.get(mid) if mid is not None else None
        if node is None or node.info is not None:
            node = Node(info)
            nodes.append(node)
            if mid is not None and mid not in table:
                table[mid] = node
        else:
            node.info = info
        # (1.A.2) each reference is the parent of the next, unless already linked
        previous: Node | None = None
        for ref in info.references:
            container = table.get(ref)
            if container is None:
                container = table[ref] = Node(None)
                nodes.append(container)
            if (
                previous is not None
                and container.parent is None
                and not _would_loop(previous, container)
            ):
                _link(previous, container)
            previous = container
        # (1.A.3) the last reference (or none) is the message's parent
        if previous is None:
            _unlink(node)
        elif not _would_loop(previous, node):
            _link(previous, node)
    # (1.B) the root set; (1.C) prune dummies
    roots = _prune([n for n in nodes if n.parent is None])
    # (1.D) sort, (1.E) group the root set by base subject, then sort again
    _sort_siblings(roots)
    roots = _merge_by_subject(roots)
    _sort_siblings(roots)
    return roots


def _prune(roots: list[Node]) -> list[Node]:
    """Drop dummies without children; splice a dummy's children into its place, except at
    the top where a dummy with several children stays (RFC 5256 §3 REFERENCES step 1.C)."""
    for node in _postorder(roots):
        kept: list[Node] = []
        for child in node.children:
            if child.info is None:
                for grandchild in child.children:
                    grandchild.parent = node
                    kept.append(grandchild)
            else:
                kept.append(child)
        node.children = kept
    top: list[Node] = []
    for node in roots:
        if node.info is None and len(node.children) < 2:
            for child in node.children:
                child.parent = None
                top.append(child)
        else:
            top.append(node)
    return top


def _is_reply(info: SortInfo) -> bool:
    """Whether the Subject carried reply/forward decorations (kept with the derived keys)."""
    flag = info.keys.get("~reply")
    if flag is None:
        flag = info.keys["~reply"] = "1" if base_subject(info.subject)[1] else ""
    return flag == "1"


def _merge_by_subject(roots: list[Node]) -> list[Node]:
    """RFC 5256 §3 REFERENCES step 1.E: threads whose first messages share a base subject
    become one thread."""
    subjects: dict[int, tuple[str, bool]] = {}
    for node in roots:
        info = _message(node)
        if info is not None:
            reply = node.info is not None and _is_reply(info)
            subjects[id(node)] = (derived(info, "SUBJECT"), reply)
    table: dict[str, Node] = {}
    for node in roots:
        subject, reply = subjects.get(id(node), ("", False))
        if not subject:
            continue
        current = table.get(subject)
        if current is None or (
            current.info is not None and (node.info is None or (subjects[id(current)][1]
                                                                 and not reply))
        ):  # fmt: skip
            table[subject] = node
    out: list[Node | None] = list(roots)
    slot = {id(n): i for i, n in enumerate(roots)}
    for i, node in enumerate(roots):
        subject, reply = subjects.get(id(node), ("", False))
        if not subject:
            continue
        held = table[subject]
        if held is node:
            continue
        if held.info is None and node.info is None:
            for child in node.children:
                child.parent = held
                held.children.append(child)
        elif held.info is None or (reply and not subjects[id(held)][1]):
            node.parent = held
            held.children.append(node)
        else:
            dummy = Node(None)
            for child in (held, node):
                child.parent = dummy
                dummy.children.append(child)
            out[slot[id(held)]] = dummy
            slot[id(dummy)] = slot[id(held)]
            subjects[id(dummy)] = (subject, False)
            table[subject] = dummy
        out[i] = None
    return [n for n in out if n is not None]


def ordered_subject(infos: Sequence[SortInfo]) -> list[Node]:
    """THREAD=ORDEREDSUBJECT: one thread per base subject, the earliest message the parent
    of the others, threads in order of their first message (RFC 5256 §3)."""
    keyed = sorted(
        ((derived(i, "SUBJECT"), i.sent, i.pos, i) for i in infos),
        key=lambda t: t[:3],
    )
    roots: list[Node] = []
    last: str | None = None
    for subject, sent, pos, info in keyed:
        node = Node(info)
        node.key = (sent, pos)
        if subject == last and roots:
            node.parent = roots[-1]
            roots[-1].children.append(node)
        else:
            roots.append(node)
            last = subject
    roots.sort(key=lambda n: n.key)
    return roots


def render(roots: Sequence[Node], number: Callable[[SortInfo], int]) -> bytes:
    """``THREAD`` response data (RFC 5256 §4): a chain is ``(1 2 3)``, siblings are
    ``(1 (2)(3))``, and a dummy parent shows only its children ``((1)(2))``."""
    out = [b"THREAD"]
    for root in roots:
        if root.info is not None and not root.children:  # a thread of one message
            out.append(
                b"(%d)" % number(root.info) if len(out) > 1 else b" (%d)" % number(root.info)
            )
            continue
        out.append(b" (" if len(out) == 1 else b"(")
        stack: list[tuple[Node, bool] | bytes] = [(root, True)]
        while stack:
            item = stack.pop()
            if isinstance(item, bytes):
                out.append(item)
                continue
            node, first = item
            if node.info is not None:
                out.append(b"%d" % number(node.info) if first else b" %d" % number(node.info))
                first = False
            kids = node.children
            if len(kids) == 1:
                stack.append((kids[0], first))
            elif kids:
                if not first:
                    out.append(b" ")
                for kid in reversed(kids):
                    stack.extend((b")", (kid, True), b"("))
        out.append(b")")
    return b"".join(out)
