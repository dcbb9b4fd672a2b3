"""The data folder's write lock: one holder at a time, whichever process or thread."""

from __future__ import annotations

import threading

from postroom.store.writelock import WriteLock


def test_a_second_holder_waits_for_the_first(tmp_path):
    first, second = WriteLock(tmp_path), WriteLock(tmp_path)
    first.open()
    second.open()
    taken = threading.Event()

    def take() -> None:
        with second:
            taken.set()

    try:
        with first:
            thread = threading.Thread(target=take)
            thread.start()
            assert not taken.wait(0.2)  # blocked while the first holds it
        assert taken.wait(10)  # and taken once it is released
        thread.join()
    finally:
        first.close()
        second.close()


def test_acquire_nowait_takes_only_a_free_lock(tmp_path):
    first, second = WriteLock(tmp_path), WriteLock(tmp_path)
    first.open()
    second.open()
    try:
        with first:
            assert not second.acquire_nowait()
        assert second.acquire_nowait()
        try:
            assert not first.acquire_nowait()
        finally:
            second.release()
    finally:
        first.close()
        second.close()
