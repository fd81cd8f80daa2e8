"""What the knowledge verbs share: the ``--home``/``--profile`` flags, building
``Settings`` (flags over env vars over defaults), and turning domain errors into one
line on stderr and exit status 1."""
from __future__ import annotations

import argparse
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
    """Run a verb's body at the CLI's one error edge (``assistant.commands.common.cli_errors``):
    an AssistantError becomes ``error: <message>`` and status 1."""
    from assistant.commands.common import cli_errors

    return cli_errors(lambda _argv: body())(None)
