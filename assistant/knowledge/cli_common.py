"""What the knowledge verbs share: the ``--home``/``--profile`` flags, building
``Settings`` (flags over env vars over defaults), and turning domain errors into one
line on stderr and exit status 1."""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from assistant.errors import AssistantError
from assistant.settings import Settings


def parser_for(prog: str, description: str) -> argparse.ArgumentParser:
    """An argument parser with the flags every verb accepts."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--home", help="data directory (default: $ASSISTANT_HOME or the XDG data dir)")
    parser.add_argument("--profile", help="device profile name, or 'auto' (default: $ASSISTANT_PROFILE or auto)")
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings with the flags that were given taking precedence over env vars."""
    overrides = {name: getattr(args, name) for name in ("home", "profile") if getattr(args, name, None)}
    return Settings(**overrides)


def run_verb(body: Callable[[], int]) -> int:
    """Run a verb's body; an AssistantError becomes ``error: <message>`` and status 1."""
    try:
        return body()
    except AssistantError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
