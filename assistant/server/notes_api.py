"""Read-only JSON about the person's notes, for the chat page's Notes panel and its
source links: ``/v1/assistant/sources``, ``/v1/assistant/search`` and
``/v1/assistant/passage``. They sit under ``/v1`` because they return note text: with an
API key set, they need it like the rest of the API. Nothing here reads a file from the
disk: passages come from the index, so only what was indexed can be read back."""
from __future__ import annotations

import asyncio
from functools import partial

from fastapi import APIRouter, Depends, Query, Request

from assistant.server.responses import documented
from assistant.server.routes import require_api_key, server_state

MAX_SEARCH_K = 20  # a panel shows a handful; the full range is `assistant search -k`

router = APIRouter(prefix="/v1/assistant", dependencies=[Depends(require_api_key)])


async def _in_executor(request: Request, function, *args):
    """Run a blocking knowledge-base call on the server's workers, off the event loop."""
    state = server_state(request)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(state.executor, partial(function, *args))


@router.get("/sources", responses=documented())
async def sources(request: Request) -> dict:
    """The indexed folders with their counts (what ``assistant sources`` shows), totals,
    and when the notes were last indexed (epoch seconds; null if never)."""
    knowledge = server_state(request).require_assistant().knowledge
    found = await _in_executor(request, knowledge.sources)
    times = [source["indexed_at"] for source in found if source["indexed_at"]]
    return {"object": "list", "data": found,
            "documents": sum(source["documents"] for source in found),
            "chunks": sum(source["chunks"] for source in found),
            "last_indexed_at": max(times) if times else None}


@router.get("/search", responses=documented())
async def search(request: Request, q: str = Query(..., description="what to look for"),
                 k: int = Query(5, ge=1, le=MAX_SEARCH_K, description="how many passages")) -> dict:
    """The ``k`` best passages for ``q`` (hybrid search, as ``assistant search``), best first."""
    knowledge = server_state(request).require_assistant().knowledge
    passages = await _in_executor(request, knowledge.search, q, k)
    return {"object": "list", "query": q,
            "data": [{**passage.as_source(), "text": passage.text} for passage in passages]}


@router.get("/passage", responses=documented())
async def passage(request: Request, path: str = Query(..., description="an indexed file's absolute path"),
                  start_line: int = Query(..., ge=1), end_line: int = Query(..., ge=1)) -> dict:
    """The indexed text of ``path`` at those lines (the chunks that overlap them), as a
    source citation names it; 404 for a path or range that is not in the index."""
    knowledge = server_state(request).require_assistant().knowledge
    chunks = await _in_executor(request, knowledge.passage, path, start_line, end_line)
    return {"path": path, "heading": chunks[0].heading,
            "start_line": chunks[0].start_line, "end_line": chunks[-1].end_line,
            "text": "\n\n".join(chunk.text for chunk in chunks),
            "chunks": [{"heading": chunk.heading, "start_line": chunk.start_line, "end_line": chunk.end_line,
                        "text": chunk.text} for chunk in chunks]}
