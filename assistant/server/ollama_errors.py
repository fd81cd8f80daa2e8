"""Errors on the Ollama API's paths in Ollama's shape, ``{"error": "..."}``, with the same
statuses (404 unknown model, 400 bad request, 401 key, 503 busy or loading).

The app's handlers (``server/errors.py``) stay the one translation of errors into a status
and a message; on ``/api/`` paths their OpenAI body is reshaped into Ollama's."""
from __future__ import annotations

import inspect
import json

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

OLLAMA_PREFIX = "/api/"
_KEPT_HEADERS = ("retry-after", "allow")


def is_ollama_path(request: Request) -> bool:
    """The request is for the Ollama API."""
    return request.url.path.startswith(OLLAMA_PREFIX)


def ollama_shape(response: Response) -> Response:
    """``{"error": {"message": ...}}`` -> ``{"error": "..."}``, same status and Retry-After/Allow."""
    try:
        message = json.loads(response.body)["error"]["message"]
    except (ValueError, KeyError, TypeError, AttributeError):
        return response
    headers = {name: response.headers[name] for name in _KEPT_HEADERS if name in response.headers}
    return JSONResponse({"error": message}, status_code=response.status_code, headers=headers)


def install_ollama_error_shape(app: FastAPI) -> None:
    """Wrap every registered exception handler (call after ``install_error_handlers``): on
    ``/api/`` paths its answer is reshaped, elsewhere it is untouched."""
    for key, handler in list(app.exception_handlers.items()):
        if inspect.iscoroutinefunction(handler):  # ours all are; a sync one is left as it is
            app.exception_handlers[key] = _reshaping(handler)


def _reshaping(handler):
    async def handle(request: Request, exc: Exception) -> Response:
        response = await handler(request, exc)
        if isinstance(response, Response) and is_ollama_path(request):
            return ollama_shape(response)
        return response

    return handle
