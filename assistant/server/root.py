"""``GET /`` and ``HEAD /``, shared by people and programs. Ollama's clients probe ``/``
for the text "Ollama is running"; a browser opening the server wants the chat page. The
``Accept`` header tells them apart: a browser asks for ``text/html``, a probe does not."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from assistant.server.page import INDEX_HTML, page_response

OLLAMA_PROBE_TEXT = "Ollama is running"
# Shown only if the package was installed without its page files
PLACEHOLDER_HTML = ("<!doctype html><html><head><meta charset=\"utf-8\"><title>assistant</title></head>"
                    "<body><p>The assistant is running; its chat page is not installed. The API is at "
                    "<code>/v1</code> (OpenAI) and <code>/api</code> (Ollama).</p></body></html>")
# Caches must keep the page and the probe text apart
VARY = {"Vary": "Accept"}

router = APIRouter()


def wants_html(request: Request) -> bool:
    """The client asked for HTML (a browser); Ollama's clients and curl do not."""
    return "text/html" in request.headers.get("accept", "").lower()


_DOCUMENTED = {200: {"description": "the chat page (Accept: text/html) or the text 'Ollama is running'",
                     "content": {"text/html": {"schema": {"type": "string"}},
                                 "text/plain": {"schema": {"type": "string"}}}}}


@router.get("/", response_class=PlainTextResponse, responses=_DOCUMENTED)
def root(request: Request) -> Response:
    """The chat page for browsers, "Ollama is running" for everyone else."""
    if not wants_html(request):
        return PlainTextResponse(OLLAMA_PROBE_TEXT, headers=VARY)
    if INDEX_HTML.is_file():
        response = page_response()
        response.headers.update(VARY)
        return response
    return HTMLResponse(PLACEHOLDER_HTML, headers=VARY)


@router.head("/", response_class=PlainTextResponse, responses=_DOCUMENTED)
def root_head(request: Request) -> Response:
    """``GET /`` without the body (Ollama's clients probe with HEAD too)."""
    return root(request)
