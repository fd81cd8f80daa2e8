"""``assistant cim``: the simulated NVCIM accelerator. ``cim reproduce [--quick] --out DIR``
runs the TSB reproduction (torch is imported here only)."""
from __future__ import annotations

import sys
from typing import Optional


def main(argv: Optional[list[str]] = None) -> int:
    """Dispatch ``cim reproduce`` to ``cim_backend.reproduce``."""
    args = list(argv or [])
    if not args or args[0] in ("-h", "--help"):
        print("usage: assistant cim reproduce [--quick] --out DIR   (assistant cim reproduce --help)")
        return 0 if args else 2
    if args[0] != "reproduce":
        print(f"error: unknown cim action '{args[0]}' (known: reproduce)", file=sys.stderr)
        return 2
    from cim_backend.reproduce import main as reproduce_main

    return reproduce_main(args[1:])


if __name__ == "__main__":
    raise SystemExit(main())
