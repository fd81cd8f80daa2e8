"""Stopping well: on SIGTERM (systemd's stop) or Ctrl-C the server stops admitting, tells
the generations in flight to end at their next token (their clients get the end of a
well-formed answer, not a cut connection), and exits 0 within the unit's stop timeout."""
from __future__ import annotations

import logging

import uvicorn

log = logging.getLogger(__name__)

GRACE_S = 10  # uvicorn waits this long for open connections (systemd's TimeoutStopSec is 30)


class GracefulServer(uvicorn.Server):
    """uvicorn's server, which first cancels the app's requests in flight when told to exit."""

    def __init__(self, config: uvicorn.Config, state):
        super().__init__(config)
        self.app_state = state

    def handle_exit(self, sig, frame) -> None:
        if not self.app_state.stopping:
            self.app_state.stopping = True
            active = list(self.app_state.active_requests)
            log.info("stopping: %d request(s) in flight are being ended", len(active))
            for cancel in active:
                cancel.set()
        super().handle_exit(sig, frame)
        # uvicorn raises the signal again once stopped (the process then dies by it); a
        # stop that went well is exit status 0, which is what systemd and scripts check.
        captured = getattr(self, "_captured_signals", None)  # uvicorn >= 0.29 keeps them here (tested)
        if isinstance(captured, list):
            captured.clear()


def graceful_config(app, host: str, port: int, log_level: str, **extra) -> uvicorn.Config:
    """The uvicorn config every listening socket of ``assistant serve`` uses."""
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False,
                          timeout_graceful_shutdown=GRACE_S, **extra)
