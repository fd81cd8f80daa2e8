"""The ``assistant`` command. Each verb lives in its own module with a ``main(argv)``, and
is imported only when used: ``assistant serve`` never pays for torch.

The output is the product's own: a library's warning (a transformers ``FutureWarning`` in
the middle of a progress bar) goes to logging at debug level, unless ``--verbose`` or
``ASSISTANT_DEBUG=1`` asks to see it."""
from __future__ import annotations

import importlib
import logging
import os
import sys
import warnings
from contextlib import contextmanager
from typing import Iterator, Optional

from assistant import __version__

DEBUG_ENV = "ASSISTANT_DEBUG"
WARNINGS_LOGGER = "py.warnings"  # the logger logging.captureWarnings uses

# verb -> (module with main(argv), one-line help)
VERBS: dict[str, tuple[str, str]] = {
    "serve": ("assistant.commands.serve", "run the OpenAI-compatible server (127.0.0.1:8765)"),
    "chat": ("assistant.commands.chat", "ask a question in-process and stream the answer"),
    "models": ("assistant.commands.models", "list, inspect or pull GGUF models"),
    "profile": ("assistant.commands.profile", "show the device profile and what it implies"),
    "personalize": ("assistant.commands.personalize", "index a folder of notes (and learn from it)"),
    "search": ("assistant.commands.search", "search the indexed notes"),
    "route": ("assistant.commands.route", "show the plan the router makes for a question, without answering"),
    "sources": ("assistant.commands.sources", "list indexed folders"),
    "forget": ("assistant.commands.forget", "remove an indexed folder"),
    "learn": ("assistant.commands.learn", "train a LoRA adapter on the indexed notes"),
    "adapters": ("assistant.commands.adapters", "list adapter versions or activate one"),
    "cim": ("assistant.commands.cim", "the simulated NVCIM accelerator (program, calibrate, status, eval, compare, reproduce)"),
    "doctor": ("assistant.commands.doctor", "check this device, models, index and server"),
    "calibrate": ("assistant.commands.calibrate", "measure each strategy on this device for the router"),
    "bench": ("assistant.commands.bench", "benchmarks on this device (bench study: the trade-off study)"),
}


def _usage() -> str:
    width = max(len(v) for v in VERBS)
    lines = ["usage: assistant [--version] [--verbose] VERB [options]   (assistant VERB --help)", "", "verbs:"]
    lines += [f"  {verb.ljust(width)}  {help_}" for verb, (_, help_) in VERBS.items()]
    return "\n".join(lines)


def debug_requested(env: Optional[dict] = None) -> bool:
    """``ASSISTANT_DEBUG`` is set to something other than empty, 0, false or no."""
    value = (os.environ if env is None else env).get(DEBUG_ENV, "")
    return value.strip().lower() not in ("", "0", "false", "no")


def _log_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` that writes to logging at debug level instead of stderr."""
    text = warnings.formatwarning(message, category, filename, lineno, line).rstrip()
    logging.getLogger(WARNINGS_LOGGER).debug("%s", text)


@contextmanager
def library_warnings_logged(show: bool) -> Iterator[None]:
    """While inside: warnings go to logging at debug level, unless ``show`` (debugging).
    The assistant itself never warns (it prints or raises), so every warning is a library's."""
    with warnings.catch_warnings():  # restores showwarning and the filters afterwards
        if not show:
            warnings.showwarning = _log_warning
        yield


def main(argv: Optional[list[str]] = None) -> int:
    """Dispatch ``argv[0]`` to its verb module; errors become one line and a non-zero exit."""
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = bool(args) and args[0] == "--verbose"
    if verbose:
        args = args[1:]
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if args else 2
    if args[0] == "--version":
        print(f"assistant {__version__}")
        return 0
    verb, rest = args[0], args[1:]
    # Notes, index, adapters and reports are private: everything this process creates is
    # readable by its owner only (folders 0700, files 0600), whatever the login's umask.
    os.umask(0o077)
    if verb not in VERBS:
        print(f"error: unknown verb '{verb}'\n\n{_usage()}", file=sys.stderr)
        return 2
    with library_warnings_logged(show=verbose or debug_requested()):
        module = importlib.import_module(VERBS[verb][0])
        return module.main(rest)


if __name__ == "__main__":
    raise SystemExit(main())
