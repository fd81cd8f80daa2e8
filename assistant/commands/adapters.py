"""``assistant adapters``: list adapter versions, or make one active."""
from __future__ import annotations

import argparse
import json
import time
from typing import Optional

from assistant.commands.common import add_settings_flags, cli_errors, settings_from_args
from assistant.learn.registry import AdapterRegistry


@cli_errors
def main(argv: Optional[list[str]] = None) -> int:
    """``adapters [list] [--json]`` or ``adapters activate NAME``."""
    parser = argparse.ArgumentParser(prog="assistant adapters", description=__doc__)
    parser.add_argument("action", nargs="?", default="list", choices=["list", "activate"])
    parser.add_argument("name", nargs="?", help="adapter to activate")
    parser.add_argument("--json", action="store_true")
    add_settings_flags(parser, ["home"])
    args = parser.parse_args(argv)
    registry = AdapterRegistry(settings_from_args(args))
    if args.action == "activate":
        if not args.name:
            parser.error("activate needs an adapter NAME")
        registry.activate(args.name)
        print(f"active adapter: {args.name} (restart 'assistant serve' to load it)")
        return 0
    rows = registry.list()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no adapters yet: run 'assistant learn' (or 'assistant personalize PATH --learn adapter')")
        return 0
    for row in rows:
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(row.get("created", 0)))
        print(f"{'*' if row['active'] else ' '} {row['name']:<32} base {row.get('base_model')}  rank {row.get('rank')} "
              f"alpha {row.get('alpha'):.0f}  val loss {row.get('val_loss', float('nan')):.3f}  {created}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
