"""The FastAPI app factory: ``create_app(settings)``; everything it holds is on app.state."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI

from assistant import __version__
from assistant.server.body_limit import BodySizeLimit
from assistant.server.errors import install_error_handlers
from assistant.server.routes import router
from assistant.server.state import ServerState
from assistant.settings import Settings


def create_app(settings: Settings, load_in_background: bool = True) -> FastAPI:
    """Build the app. The model loads in a background thread at start-up, so ``/health``
    answers 503 while loading and 200 once ready."""
    # Every admitted request holds a worker for its whole life (waiting its turn included):
    # one running and queue_size waiting, plus spares so that a request beyond capacity is
    # refused at once and embeddings are never starved.
    executor = ThreadPoolExecutor(max_workers=settings.queue_size + 5, thread_name_prefix="request")
    state = ServerState(settings=settings, executor=executor)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        settings.ensure_home()
        if load_in_background:
            threading.Thread(target=state.load, name="load-model", daemon=True).start()
        else:
            state.load()
        yield
        executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="assistant", version=__version__, lifespan=lifespan)
    app.state.server = state
    install_error_handlers(app)
    app.include_router(router)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    return app
