"""Bridge from the engine's blocking generator (run in a worker thread) to async code,
with cancellation when the consumer goes away (a client that disconnects)."""
from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Executor
from typing import AsyncIterator, Callable, Iterator, TypeVar

T = TypeVar("T")
_END = object()


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


async def iterate_in_thread(make_iterator: Callable[[], Iterator[T]], executor: Executor,
                            cancel: threading.Event, on_done: Callable[[], None] = lambda: None,
                            ) -> AsyncIterator[T]:
    """Yield the items of ``make_iterator()`` produced in ``executor``. When the consumer
    stops early (disconnect, cancellation), ``cancel`` is set so the worker stops too;
    ``on_done`` runs in the worker once it has really finished."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()

    def put(item) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            cancel.set()

    def work() -> None:
        try:
            # The iterator itself watches ``cancel`` (the engine checks it every token) and
            # ends with its final record, so it is drained here rather than cut off.
            for item in make_iterator():
                put(item)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(_Failure(exc))
        finally:
            on_done()
            put(_END)

    loop.run_in_executor(executor, work)
    try:
        while True:
            item = await queue.get()
            if item is _END:
                break
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        cancel.set()
