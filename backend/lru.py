"""A small thread-safe least-recently-used mapping: the engine's caches of figures and fits."""

from __future__ import annotations

import threading
from collections import OrderedDict


class Lru:
    """At most ``capacity`` entries; reading one makes it the newest. ``get`` and item
    assignment are safe from several threads (viewers' script runs)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key, default=None):
        with self._lock:
            if key not in self._items:
                return default
            self._items.move_to_end(key)
            return self._items[key]

    def __setitem__(self, key, value) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
