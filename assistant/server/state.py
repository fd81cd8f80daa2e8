"""What the app keeps while it runs: settings, the assistant once loaded, and load status."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Optional

from assistant.errors import AssistantError, NotReadyError
from assistant.orchestrator import Assistant
from assistant.settings import Settings


@dataclass
class ServerState:
    """Lives on ``app.state.server``; no module globals."""

    settings: Settings
    executor: ThreadPoolExecutor
    assistant: Optional[Assistant] = None
    load_error: Optional[str] = None
    loaded: threading.Event = field(default_factory=threading.Event)
    warnings: list[str] = field(default_factory=list)  # shown on /health (e.g. no API key on the LAN)
    active_requests: set = field(default_factory=set)  # cancel events of the requests in flight
    stopping: bool = False  # set on SIGTERM: no new requests, those in flight end at their next token

    def load(self) -> None:
        """Load the assistant (in a background thread, so /health can answer 503 meanwhile)."""
        try:
            self.assistant = Assistant.load(self.settings)
        except AssistantError as exc:
            self.load_error = exc.message
        except Exception as exc:  # noqa: BLE001 - reported on /health, the server keeps running
            self.load_error = f"{type(exc).__name__}: {exc}"
        finally:
            self.loaded.set()

    def require_assistant(self) -> Assistant:
        """The loaded assistant, or NotReadyError (503) while loading, after a failed load,
        or while shutting down."""
        if self.stopping:
            raise NotReadyError("the server is shutting down; retry shortly")
        if self.assistant is None:
            raise NotReadyError(self.load_error or "the model is still loading; retry shortly")
        return self.assistant
