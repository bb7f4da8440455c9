"""A semaphore that hands its places to waiters in the order they came.

`threading.Lock`/`Semaphore`/`Condition` let whichever thread the scheduler runs next take a place
that was just given back, often the thread that gave it back. Under load that starves some
waiters: measured on SQLite's write turn, some writers waited 15 s behind others. Used for the
SQLite write turn (one place, ivr/store/sqlite.py) and for admission of webhooks (N places,
ivr/web/admission.py).
"""
from __future__ import annotations

import threading
from collections import deque


class FifoSemaphore:
    """`places` places, each handed to the longest waiter when given back."""

    def __init__(self, places: int = 1) -> None:
        if places < 1:
            raise ValueError(f"a semaphore needs at least one place, not {places}")
        self.places = places
        self._mutex = threading.Lock()
        self._free = places
        self._waiters: deque[threading.Lock] = deque()

    def acquire(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for a place; True when this thread holds one."""
        with self._mutex:
            if self._free and not self._waiters:
                self._free -= 1
                return True
            waiter = threading.Lock()
            waiter.acquire()
            self._waiters.append(waiter)
        if waiter.acquire(timeout=timeout):
            return True   # handed over by `release`
        with self._mutex:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
                return False
        return True   # handed over just as the wait ended: this thread holds it now

    def release(self) -> None:
        """Hand the place to the longest waiter, or leave it free."""
        with self._mutex:
            if self._waiters:
                self._waiters.popleft().release()
            else:
                self._free += 1

    @property
    def free(self) -> int:
        """Places nobody holds."""
        return self._free

    @property
    def waiting(self) -> int:
        """Threads waiting for a place."""
        return len(self._waiters)
