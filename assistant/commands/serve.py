"""``assistant serve``: the OpenAI-compatible server, on 127.0.0.1:8765 by default."""
from __future__ import annotations

import argparse
import logging
from typing import Optional

from assistant.commands.common import add_settings_flags, cli_errors, settings_from_args


@cli_errors
def main(argv: Optional[list[str]] = None) -> int:
    """Parse flags and run uvicorn until interrupted."""
    parser = argparse.ArgumentParser(prog="assistant serve", description=__doc__)
    add_settings_flags(parser, ["host", "port", "model", "profile", "api_key", "home", "n_ctx", "n_threads",
                                "queue_size", "max_body_bytes"])
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)
    settings = settings_from_args(args)

    import uvicorn

    from assistant.server import create_app

    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    app = create_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=args.log_level, access_log=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
