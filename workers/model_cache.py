"""The per-process cache of loaded models that every GPU/LLM task module keeps (SAM 3, tracker, verifier).

Keyed by the model URI that arrives in each payload, so a newly promoted version is loaded on its first task,
without a worker restart; the newest ``capacity`` stay loaded (least recently used evicted first). Loading
happens under the cache's lock: two threads asking for the same new model load it once.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class ModelCache(Generic[T]):
    def __init__(self, capacity: int = 2, *, on_evict: Callable[[], None] | None = None):
        self.capacity = capacity
        self._on_evict = on_evict  # called once after evicting (e.g. to free accelerator memory)
        self._items: OrderedDict[str, T] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, uri: str, load: Callable[[], T]) -> T:
        """The cached model for ``uri``, or ``load()``'s result (cached; the oldest evicted). ``load``'s
        exceptions propagate and cache nothing."""
        with self._lock:
            model = self._items.get(uri)
            if model is not None:
                self._items.move_to_end(uri)
                return model
            model = load()
            self._items[uri] = model
            evicted = False
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
                evicted = True
            if evicted and self._on_evict is not None:
                self._on_evict()
            return model

    def clear(self) -> None:
        """Forget every cached model (tests; a worker never needs this)."""
        with self._lock:
            self._items.clear()

    def __iter__(self) -> Iterator[str]:
        """The cached URIs, least recently used first."""
        with self._lock:
            return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, uri: object) -> bool:
        return uri in self._items
