"""Admission control: one generation runs at a time, a bounded number wait; beyond that
the caller is told to retry (HTTP 503 + Retry-After) instead of piling up requests."""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

from assistant.errors import BusyError


class AdmissionGate:
    """Counts running + waiting requests; refuses once ``1 + queue_size`` are in."""

    def __init__(self, queue_size: int):
        self.capacity = 1 + queue_size
        self._inside = 0
        self._lock = threading.Lock()

    def enter(self) -> None:
        """Take a place or raise BusyError."""
        with self._lock:
            if self._inside >= self.capacity:
                raise BusyError(f"the model is busy ({self.capacity} requests in progress); retry shortly")
            self._inside += 1

    def leave(self) -> None:
        """Give the place back."""
        with self._lock:
            self._inside = max(0, self._inside - 1)

    @contextmanager
    def admitted(self) -> Iterator[None]:
        """``with gate.admitted():`` around a whole request."""
        self.enter()
        try:
            yield
        finally:
            self.leave()

    @property
    def inside(self) -> int:
        return self._inside
