"""One translation of errors into OpenAI's error JSON, for every route."""
from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from assistant.errors import AssistantError, BusyError

log = logging.getLogger(__name__)


def error_body(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict:
    """``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error_response(exc: AssistantError) -> JSONResponse:
    """The JSON response for a domain error, with Retry-After when the server is busy."""
    headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, BusyError) else None
    return JSONResponse(exc.to_openai(), status_code=exc.status, headers=headers)


# validation errors the schemas raise with a code of their own (PydanticCustomError types)
DOMAIN_CODES = {"backend_unavailable"}


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None, str]:
    """(message, param, code) of the first validation error."""
    first = exc.errors()[0] if exc.errors() else {}
    # pydantic adds the member of a union it tried ("constrained-str", "list[...]"): not a field
    loc = [str(part) for part in first.get("loc", ()) if part != "body"
           and (isinstance(part, int) or str(part).isidentifier())]
    if first.get("type") == "json_invalid":
        return "the request body is not valid JSON", None, "invalid_request"
    param = ".".join(loc) or None
    message = first.get("msg", "invalid request")
    code = first.get("type") if first.get("type") in DOMAIN_CODES else "invalid_request"
    return (f"{param}: {message}" if param else message), param, code


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that make every error an OpenAI error."""

    @app.exception_handler(AssistantError)
    async def _domain(_request: Request, exc: AssistantError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param, code = _validation_message(exc)
        return JSONResponse(error_body(message, "invalid_request_error", code, param), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(error_body(str(exc.detail), "invalid_request_error", code), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))  # e.g. Allow on a 405

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return JSONResponse(error_body(f"internal error: {type(exc).__name__}", "server_error", "internal_error"),
                            status_code=500)
