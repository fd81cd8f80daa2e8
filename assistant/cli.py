"""The ``assistant`` command. Each verb lives in its own module with a ``main(argv)``, and
is imported only when used: ``assistant serve`` never pays for torch."""
from __future__ import annotations

import importlib
import sys
from typing import Optional

from assistant import __version__

# verb -> (module with main(argv), one-line help)
VERBS: dict[str, tuple[str, str]] = {
    "serve": ("assistant.commands.serve", "run the OpenAI-compatible server (127.0.0.1:8765)"),
    "chat": ("assistant.commands.chat", "ask a question in-process and stream the answer"),
    "models": ("assistant.commands.models", "list, inspect or pull GGUF models"),
    "profile": ("assistant.commands.profile", "show the device profile and what it implies"),
    "personalize": ("assistant.knowledge.cli_personalize", "index a folder of notes (and learn from it)"),
    "search": ("assistant.knowledge.cli_search", "search the indexed notes"),
    "sources": ("assistant.knowledge.cli_sources", "list indexed folders"),
    "forget": ("assistant.knowledge.cli_forget", "remove an indexed folder"),
    "learn": ("assistant.commands.learn", "train a LoRA adapter on the indexed notes"),
    "adapters": ("assistant.commands.adapters", "list adapter versions or activate one"),
    "cim": ("assistant.commands.cim", "the simulated NVCIM accelerator (cim reproduce)"),
    "doctor": ("assistant.commands.doctor", "check this device, models, index and server"),
    "calibrate": ("assistant.commands.calibrate", "measure each strategy on this device for the router"),
    "bench": ("assistant.commands.bench", "benchmarks on this device (bench study: the trade-off study)"),
}


def _usage() -> str:
    width = max(len(v) for v in VERBS)
    lines = [f"usage: assistant [--version] VERB [options]   (assistant VERB --help)", "", "verbs:"]
    lines += [f"  {verb.ljust(width)}  {help_}" for verb, (_, help_) in VERBS.items()]
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    """Dispatch ``argv[0]`` to its verb module; errors become one line and a non-zero exit."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if args else 2
    if args[0] == "--version":
        print(f"assistant {__version__}")
        return 0
    verb, rest = args[0], args[1:]
    if verb not in VERBS:
        print(f"error: unknown verb '{verb}'\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(VERBS[verb][0])
    return module.main(rest)


if __name__ == "__main__":
    raise SystemExit(main())
