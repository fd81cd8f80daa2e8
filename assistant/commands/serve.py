"""``assistant serve``: the OpenAI-compatible server, on 127.0.0.1:8765 by default."""
from __future__ import annotations

import argparse
import logging
from typing import Optional

from assistant.commands.common import add_settings_flags, cli_errors, settings_from_args
from assistant.errors import InvalidRequestError
from assistant.settings import Settings


@cli_errors
def main(argv: Optional[list[str]] = None) -> int:
    """Parse flags and run uvicorn until interrupted."""
    parser = argparse.ArgumentParser(prog="assistant serve", description=__doc__)
    add_settings_flags(parser, ["host", "port", "ollama_port", "model", "backend", "profile", "api_key", "home", "n_ctx",
                                "initial_context", "kv_cache_type",
                                "n_batch", "n_threads", "queue_size", "max_wait", "max_body_bytes", "allowed_hosts",
                                "allowed_origins", "insecure_no_auth"])
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)
    settings = settings_from_args(args)

    from assistant.server import create_app

    if settings.ollama_port is not None and settings.ollama_port == settings.port:
        raise InvalidRequestError("--ollama-port must differ from --port (the Ollama API is on --port already)",
                                  param="ollama_port")
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    run_server(create_app(settings), settings, args.log_level)
    return 0


def run_server(app, settings: Settings, log_level: str) -> None:
    """uvicorn on ``port``, and on ``ollama_port`` too when set: one server listening on
    two sockets, so the app starts once (one lifespan, one loaded model)."""
    from assistant.server.shutdown import GracefulServer, graceful_config

    config = graceful_config(app, settings.host, settings.port, log_level)
    server = GracefulServer(config, app.state.server)
    if settings.ollama_port is None:
        server.run()
        return
    ollama = graceful_config(app, settings.host, settings.ollama_port, log_level)
    server.run(sockets=[config.bind_socket(), ollama.bind_socket()])


if __name__ == "__main__":
    raise SystemExit(main())
