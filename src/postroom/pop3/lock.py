"""The POP3 maildrop lock (RFC 1939 §4: exclusive access; RFC 2449 §8.1.1 [IN-USE]).

The lock lives in the server process: a set of account ids per store.  Several processes or
nodes sharing one database need a lock they all see (an advisory lock in PostgreSQL); such an
implementation replaces ``LocalLocks`` behind the same two methods.
"""

from __future__ import annotations

import weakref

from postroom.store.base import Store


class LocalLocks:
    """Maildrop locks held by the sessions of this process."""

    def __init__(self) -> None:
        self._held: set[int] = set()

    def acquire(self, account_id: int) -> bool:
        """Lock the account's maildrop; False when another session holds it."""
        if account_id in self._held:
            return False
        self._held.add(account_id)
        return True

    def release(self, account_id: int) -> None:
        self._held.discard(account_id)


# Keyed by store, so two servers in one process (tests) never share account ids.
_registry: weakref.WeakKeyDictionary[Store, LocalLocks] = weakref.WeakKeyDictionary()


def locks_for(store: Store) -> LocalLocks:
    """The lock table of the maildrops in ``store``."""
    locks = _registry.get(store)
    if locks is None:
        locks = _registry[store] = LocalLocks()
    return locks
