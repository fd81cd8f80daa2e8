"""``assistant models``: list the catalog, show a model's header, pull one from a hub."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Optional

from assistant.commands.common import add_settings_flags, cli_errors, settings_from_args
from assistant.errors import AssistantError
from assistant.models.catalog import catalog_entries, resolve_model
from assistant.models.memory import estimate_memory
from assistant.models.pull import pull_model
from assistant.settings import Settings


def _list(settings: Settings, as_json: bool) -> int:
    rows = []
    for entry in catalog_entries(settings):
        try:
            info = resolve_model(entry.name, settings).info.summary()
            rows.append({**info, "name": entry.name, "source": entry.source, "available": True})
        except AssistantError as exc:
            rows.append({"name": entry.name, "source": entry.source, "available": False, "reason": exc.message})
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'NAME':<24} {'SOURCE':<10} {'ARCH':<8} {'PARAMS':>8} {'QUANT':<7} {'CTX':>6} TEMPLATE")
    for row in rows:
        if not row["available"]:
            print(f"{row['name']:<24} {row['source']:<10} not available: {row['reason']}")
            continue
        print(f"{row['name']:<24} {row['source']:<10} {row['architecture']:<8} {row['parameters'] / 1e6:>7.0f}M "
              f"{row['quantization']:<7} {row['context_length']:>6} {'yes' if row['chat_template'] else 'no'}")
    return 0


def _info(settings: Settings, name: str) -> int:
    model = resolve_model(name, settings)
    data = {**model.info.summary(), "name": model.name, "path": str(model.path),
            "memory_at_2048": estimate_memory(model.info, min(2048, model.info.context_length)).as_dict()}
    print(json.dumps(data, indent=2))
    return 0


def _pull(settings: Settings, repo: str, filename: str, name: Optional[str]) -> int:
    def progress(done: int, total: Optional[int]) -> None:
        shown = f"{done / 1e6:.1f}/{total / 1e6:.1f} MB" if total else f"{done / 1e6:.1f} MB"
        print(f"\rdownloading {filename}: {shown}", end="", file=sys.stderr)

    path = pull_model(settings, repo, filename, name, progress)
    print(f"\nsaved {path}", file=sys.stderr)
    return 0


@cli_errors
def main(argv: Optional[list[str]] = None) -> int:
    """``models [list]``, ``models info NAME|PATH``, ``models pull REPO FILE``."""
    parser = argparse.ArgumentParser(prog="assistant models", description=__doc__)
    sub = parser.add_subparsers(dest="action")
    list_parser = sub.add_parser("list", help="list catalog models (default)")
    list_parser.add_argument("--json", action="store_true")
    info_parser = sub.add_parser("info", help="a model's GGUF header and memory estimate")
    info_parser.add_argument("name", help="catalog name or path to a .gguf file")
    pull_parser = sub.add_parser("pull", help="download a GGUF file from a model hub (needs network)")
    pull_parser.add_argument("repo", help="e.g. HuggingFaceTB/SmolLM2-360M-Instruct-GGUF")
    pull_parser.add_argument("file", help="the .gguf file in that repo")
    pull_parser.add_argument("--name", default=None, help="catalog name to save it as")
    for each in (parser, list_parser, info_parser, pull_parser):
        add_settings_flags(each, ["home", "hub_url"] if each is pull_parser else ["home"])
    args = parser.parse_args(argv)
    settings = settings_from_args(args)
    if args.action == "info":
        return _info(settings, args.name)
    if args.action == "pull":
        return _pull(settings, args.repo, args.file, args.name)
    return _list(settings, getattr(args, "json", False))


if __name__ == "__main__":
    raise SystemExit(main())
