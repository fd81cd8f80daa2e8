"""Admission control: one request is served at a time, a bounded number wait their turn
first in, first out; beyond that the caller is told to retry (HTTP 503 + Retry-After)
instead of piling up requests. A waiting request whose client went away leaves the queue
without ever reaching the engine."""
from __future__ import annotations

import itertools
import threading
import time
from contextlib import contextmanager
from typing import Iterator, Optional

from assistant.errors import BusyError, CancelledError

POLL_S = 0.05  # how often a waiting request looks at its cancel flag


class AdmissionGate:
    """``with gate.turn(cancel):`` admits a request (or raises BusyError at once), waits
    for its turn in arrival order, and gives the place back on every way out."""

    def __init__(self, queue_size: int, max_wait_s: Optional[float] = None):
        self.capacity = 1 + queue_size
        self.max_wait_s = max_wait_s
        self._tickets = itertools.count()
        self._waiting: list[int] = []  # tickets in arrival order
        self._running: Optional[int] = None
        self._changed = threading.Condition()

    @contextmanager
    def turn(self, cancel: Optional[threading.Event] = None) -> Iterator[None]:
        """Enter, wait for the turn, run the body, leave. Raises BusyError when full (or
        when ``max_wait_s`` passes in the queue) and CancelledError when ``cancel`` is set
        while waiting."""
        ticket = self._enter()
        try:
            self._wait_for_turn(ticket, cancel)
            yield
        finally:
            self._leave(ticket)

    def _enter(self) -> int:
        with self._changed:
            if self.inside >= self.capacity:
                raise BusyError(f"the model is busy ({self.capacity} requests in progress); retry shortly")
            ticket = next(self._tickets)
            self._waiting.append(ticket)
            return ticket

    def _wait_for_turn(self, ticket: int, cancel: Optional[threading.Event]) -> None:
        deadline = None if self.max_wait_s is None else time.monotonic() + self.max_wait_s
        with self._changed:
            while self._running is not None or self._waiting[0] != ticket:
                if cancel is not None and cancel.is_set():
                    raise CancelledError("the client went away while waiting in the queue")
                if deadline is not None and time.monotonic() >= deadline:
                    raise BusyError(f"waited {self.max_wait_s:g} s in the queue; retry shortly")
                self._changed.wait(POLL_S)
            self._waiting.pop(0)
            self._running = ticket

    def _leave(self, ticket: int) -> None:
        with self._changed:
            if self._running == ticket:
                self._running = None
            elif ticket in self._waiting:
                self._waiting.remove(ticket)
            self._changed.notify_all()

    @property
    def inside(self) -> int:
        """Requests running or waiting now."""
        return len(self._waiting) + (self._running is not None)

    @property
    def waiting(self) -> int:
        """Requests waiting for their turn."""
        return len(self._waiting)
