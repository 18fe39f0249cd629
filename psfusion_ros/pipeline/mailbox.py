"""A one-slot "latest" mailbox between the ROS callbacks and the inference worker.

Callbacks never wait for the network: a new pair replaces an unconsumed one (counted as stale), so the
worker always fuses the freshest pair and latency stays one frame instead of growing with a queue.
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestMailbox(Generic[T]):
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._full = False
        self._closed = False
        self.replaced = 0  # items overwritten before the worker took them

    def put(self, item: T) -> bool:
        """Store ``item``; returns True when it replaced one the worker never saw."""
        with self._cond:
            replaced = self._full
            self.replaced += replaced
            self._item, self._full = item, True
            self._cond.notify()
            return replaced

    def get(self, timeout: float | None = None) -> T | None:
        """The latest item (and empty the slot), or None on timeout or after ``close``."""
        with self._cond:
            self._cond.wait_for(lambda: self._full or self._closed, timeout)
            if not self._full:
                return None
            item, self._item, self._full = self._item, None, False
            return item

    def close(self) -> None:
        """Wake any waiting worker; later ``get`` calls return None once the slot is empty."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
