"""The FastAPI app factory: ``create_app(settings)``; everything it holds is on app.state."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from assistant import __version__
from assistant.profiles import resolve_profile
from assistant.server.body_limit import BodySizeLimit
from assistant.server.responses import without_422
from assistant.server.guard import HostGuard, check_bind, is_loopback, own_origins
from assistant.server.errors import install_error_handlers
from assistant.server.notes_api import router as notes_router
from assistant.server.ollama import router as ollama_router
from assistant.server.ollama_errors import install_ollama_error_shape
from assistant.server.page import install_page
from assistant.server.root import router as root_router
from assistant.server.routes import router
from assistant.server.state import ServerState
from assistant.settings import Settings


def create_app(settings: Settings, load_in_background: bool = True) -> FastAPI:
    """Build the app. The model loads in a background thread at start-up, so ``/health``
    answers 503 while loading and 200 once ready."""
    # Every admitted request holds a worker for its whole life (waiting its turn included):
    # one running and queue_size waiting, plus spares so that a request beyond capacity is
    # refused at once and embeddings are never starved.
    check_bind(settings)
    profile = resolve_profile(settings.profile, settings.profiles_dir, settings.system_root)
    queue_size = settings.queue_size or profile.queue_size
    executor = ThreadPoolExecutor(max_workers=queue_size + 5, thread_name_prefix="request")
    state = ServerState(settings=settings, executor=executor)
    if not is_loopback(settings.host) and not settings.api_key:
        state.warnings.append(f"listening on {settings.host} without an API key: anyone on the network can "
                              "read the indexed notes")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        settings.ensure_home()
        if load_in_background:
            threading.Thread(target=state.load, name="load-model", daemon=True).start()
        else:
            state.load()
        yield
        executor.shutdown(wait=False, cancel_futures=True)

    # No /docs or /redoc: FastAPI's pages load Swagger/ReDoc from a CDN, blank offline (the
    # API is in the README; /openapi.json is still served).
    app = FastAPI(title="assistant", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.server = state
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(notes_router)
    app.include_router(ollama_router)  # the Ollama API, same port
    app.include_router(root_router)  # GET /: the page for browsers, Ollama's probe text otherwise
    install_ollama_error_shape(app)  # after every handler is registered
    install_page(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(CORSMiddleware, allow_origins=own_origins(settings), allow_methods=["GET", "POST", "HEAD"],
                       allow_headers=["authorization", "content-type"])
    app.add_middleware(HostGuard, settings=settings)  # added last: runs first
    plain_openapi = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = without_422(plain_openapi())
        return app.openapi_schema

    app.openapi = openapi
    return app
