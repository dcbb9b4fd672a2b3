"""A server process's start-up objects are frozen out of the collector's full passes."""

from __future__ import annotations

import gc
import weakref

from postroom.memory import freeze_start_up_objects


class Cycle:
    def __init__(self) -> None:
        self.me = self


def test_start_up_objects_are_frozen_and_garbage_is_not() -> None:
    garbage = weakref.ref(Cycle())  # only a cycle keeps it: the collector must free it
    before = gc.get_freeze_count()
    try:
        freeze_start_up_objects()
        assert gc.get_freeze_count() > before
        assert garbage() is None  # collected first, not frozen for good
    finally:
        gc.unfreeze()
