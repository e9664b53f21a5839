"""One object per key for the life of the process, made on first use: the price providers'
circuit breakers (one per provider) and the cache's outage records (one per server)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerKey(Generic[T]):
    """``per_key(key)`` is the object ``make(key)`` made the first time the key was asked for.

    A lock, not ``functools.cache``: two threads asking at once for a new key would each make
    one, and one of them would keep counting on an object nobody else sees.
    """

    def __init__(self, make: Callable[[str], T]) -> None:
        self._make = make
        self._objects: dict[str, T] = {}
        self._lock = threading.Lock()

    def __call__(self, key: str) -> T:
        with self._lock:
            obj = self._objects.get(key)
            if obj is None:
                obj = self._objects[key] = self._make(key)
            return obj

    def values(self) -> list[T]:
        with self._lock:
            return list(self._objects.values())

    def clear(self) -> None:
        with self._lock:
            self._objects.clear()
