"""The chat page's files: ``assistant/server/static/`` served at ``/static``, with a strict
Content-Security-Policy. The page is plain HTML, CSS and JavaScript shipped in the
package: no build step, nothing from a CDN, so it works offline. ``GET /`` (the route with
content negotiation) serves ``INDEX_HTML`` and should send ``PAGE_HEADERS`` with it."""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).resolve().parent / "static"
INDEX_HTML = STATIC_DIR / "index.html"

# Only our own scripts, styles and API: no inline script (model output can never become
# code), no third-party origin, no framing (clickjacking the Stop or key buttons).
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; "
                           "frame-ancestors 'none'")
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    # revalidate on every load (ETag): an upgraded server must not run yesterday's app.js
    "Cache-Control": "no-cache",
}


class PageFiles(StaticFiles):
    """StaticFiles that add ``PAGE_HEADERS`` to every answer."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        """The file (or a 304/404), with the page's security headers."""
        response = await super().get_response(path, scope)
        response.headers.update(PAGE_HEADERS)
        return response


def page_response() -> FileResponse:
    """``index.html`` with the page's headers: what ``GET /`` answers to a browser."""
    return FileResponse(INDEX_HTML, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


def install_page(app: FastAPI) -> None:
    """Serve the page's files at ``/static`` (``/static/index.html`` is the page itself)."""
    app.mount("/static", PageFiles(directory=STATIC_DIR), name="static")
