"""What every verb shares: flags generated from the Settings fields, and the error edge
(a domain error prints one line and exits non-zero, never a traceback)."""
from __future__ import annotations

import argparse
import functools
import sys
from typing import Callable, Iterable, Optional

from assistant.errors import AssistantError
from assistant.settings import Settings


def add_settings_flags(parser: argparse.ArgumentParser, names: Iterable[str]) -> None:
    """Add ``--<name>`` flags for these Settings fields, with the field's description as help."""
    for name in names:
        field = Settings.model_fields[name]
        flag = "--" + name.replace("_", "-")
        help_ = f"{field.description} (env ASSISTANT_{name.upper()})"
        if field.annotation is bool:  # a switch: present means true
            parser.add_argument(flag, dest=f"setting_{name}", default=None, action="store_true", help=help_)
        else:
            parser.add_argument(flag, dest=f"setting_{name}", default=None, metavar=name.upper(), help=help_)


def settings_from_args(args: argparse.Namespace, **extra) -> Settings:
    """Settings from env vars and defaults, overridden by the flags that were given;
    ``extra`` passes pydantic-settings options such as ``_env_file``."""
    overrides = {key[len("setting_"):]: value for key, value in vars(args).items()
                 if key.startswith("setting_") and value is not None}
    return Settings(**overrides, **extra)


QUESTION_HELP = "the question; '-' reads it from stdin"


def read_question(parser: argparse.ArgumentParser, argument: str) -> str:
    """The question argument, read from stdin when it is '-'; a usage error when empty."""
    question = sys.stdin.read() if argument == "-" else argument
    if not question.strip():
        parser.error("the question is empty")
    return question


def cli_errors(main: Callable[[Optional[list[str]]], int]) -> Callable[[Optional[list[str]]], int]:
    """Decorator for a verb's main: AssistantError -> ``error: ...`` on stderr, exit 1;
    Ctrl-C -> exit 130."""

    @functools.wraps(main)
    def wrapper(argv: Optional[list[str]] = None) -> int:
        try:
            return main(argv)
        except AssistantError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130

    return wrapper
