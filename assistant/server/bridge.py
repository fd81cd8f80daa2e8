"""The one bridge from ``Assistant.ask`` (blocking, in a worker thread) to the async edges
(SSE today; NDJSON for other APIs).

The worker runs the request's whole life, from its place in the queue to the last token,
and is started at once, so its admission place is given back on every path, also when
the response is never read. The event loop is woken once per batch, not once per token:
the consumer takes everything that is ready at each wake-up, so an edge can send the
pieces of one wake-up as one event and keep up with the engine."""
from __future__ import annotations

import asyncio
import threading
from collections import deque
from concurrent.futures import Executor
from typing import AsyncIterator, Optional

from starlette.requests import Request

from assistant.errors import CancelledError
from assistant.orchestrator import Answer, AskRequest, Assistant

DISCONNECT_POLL_S = 0.2  # how often a client is checked while its request waits or runs


class _End:
    def __init__(self, error: Optional[BaseException] = None):
        self.error = error


class EventBridge:
    """One request: ``start`` runs it in ``executor``; ``answer()`` waits for the plan and
    sources; ``batches()`` yields lists of the events ready at each wake-up. Setting
    ``cancel`` (the client left) stops the request wherever it is: in the queue, or at
    the next token."""

    def __init__(self) -> None:
        self.cancel = threading.Event()
        self._loop = asyncio.get_running_loop()
        self._items: deque = deque()
        self._wake = asyncio.Event()
        self._signalled = False
        self._lock = threading.Lock()

    def start(self, assistant: Assistant, request: AskRequest, executor: Executor,
              active: Optional[set] = None) -> None:
        """Run ``assistant.ask(request)`` in ``executor``, feeding this bridge; while it runs
        its cancel event is in ``active`` (so a shutdown can end it)."""
        self._active = active if active is not None else set()
        self._active.add(self.cancel)
        self._loop.run_in_executor(executor, self._work, assistant, request)

    def _work(self, assistant: Assistant, request: AskRequest) -> None:
        end = _End()
        try:
            with assistant.ask(request, self.cancel) as answer:
                self._put(answer)
                for event in answer.events:
                    self._put(event)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            end = _End(exc)
        finally:
            self._active.discard(self.cancel)
            self._put(end)

    def _put(self, item) -> None:
        with self._lock:
            self._items.append(item)
            if self._signalled:
                return  # the consumer has not woken since the last signal: it will see this too
            self._signalled = True
        try:
            self._loop.call_soon_threadsafe(self._wake.set)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self.cancel.set()

    async def _take(self) -> list:
        await self._wake.wait()
        with self._lock:
            self._wake.clear()
            self._signalled = False
            items = list(self._items)
            self._items.clear()
        return items

    async def answer(self, request: Optional[Request] = None) -> Answer:
        """The plan and sources, once the request had its turn and was prepared; raises
        what ``ask`` raised (BusyError, a bad request). With ``request``, a client that
        leaves meanwhile cancels it (CancelledError)."""
        watcher = asyncio.create_task(self.watch(request)) if request is not None else None
        try:
            while True:
                for index, item in enumerate(items := await self._take()):
                    if isinstance(item, _End):
                        raise item.error or CancelledError("the request ended before its answer")
                    if isinstance(item, Answer):
                        self._push_back(items[index + 1:])
                        return item
        finally:
            if watcher is not None:
                watcher.cancel()

    def _push_back(self, items: list) -> None:
        if items:
            with self._lock:
                self._items.extendleft(reversed(items))
                self._signalled = True
            self._wake.set()

    async def batches(self) -> AsyncIterator[list]:
        """Lists of generation events, as they become ready; ends after the last one.
        Leaving early (the client disconnected) cancels the generation."""
        try:
            while True:
                items = await self._take()
                events = [item for item in items if not isinstance(item, _End)]
                if events:
                    yield events
                end = next((item for item in items if isinstance(item, _End)), None)
                if end is not None:
                    if end.error is not None:
                        raise end.error
                    return
        finally:
            self.cancel.set()

    async def watch(self, request: Optional[Request]) -> None:
        """Set ``cancel`` when the client disconnects (until cancelled itself)."""
        if request is None:
            return
        while not self.cancel.is_set():
            if await request.is_disconnected():
                self.cancel.set()
                return
            await asyncio.sleep(DISCONNECT_POLL_S)

