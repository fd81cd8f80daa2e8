"""Refuse request bodies over a size limit with 413, before any parsing."""
from __future__ import annotations

import json

from assistant.errors import PayloadTooLargeError


DRAIN_LIMIT_BYTES = 64 * 1024 * 1024  # the most we read of a refused body (then the connection closes)


class BodySizeLimit:
    """Pure ASGI middleware: checks Content-Length, and counts streamed (chunked) bodies too."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._drain(receive, int(declared))
            return await self._refuse(send)
        chunks, total = [], 0
        more = scope["method"] in ("POST", "PUT", "PATCH")
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.max_bytes:
                if message.get("more_body", False):
                    await self._drain(receive, DRAIN_LIMIT_BYTES)
                return await self._refuse(send)
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect, as Starlette expects

        return await self.app(scope, replay, send)

    async def _drain(self, receive, declared: int) -> None:
        """Read and drop the body before answering: a server that answers and closes while
        the client is still sending makes the client see a connection reset, not the 413.
        Bounded, so a client cannot keep us reading forever."""
        left = min(declared, DRAIN_LIMIT_BYTES)
        while left > 0:
            message = await receive()
            if message["type"] != "http.request":
                return
            left -= len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    async def _refuse(self, send) -> None:
        error = PayloadTooLargeError(f"request body exceeds {self.max_bytes} bytes")
        payload = json.dumps(error.to_openai()).encode()
        await send({"type": "http.response.start", "status": error.status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})
