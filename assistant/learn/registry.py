"""Adapters under ``$ASSISTANT_HOME/adapters``: versioned files, one marked active in
``active.json`` (written atomically)."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Optional

from assistant.learn.errors import AdapterNotFoundError
from assistant.models.adapter_format import read_adapter_metadata
from assistant.models.gguf_info import read_gguf_info
from assistant.settings import Settings

_VERSION = re.compile(r"-v(\d+)\.gguf$")
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


class AdapterRegistry:
    """Lists, names and activates adapter versions."""

    def __init__(self, settings: Settings):
        self.folder = settings.layout.adapters
        self.marker = settings.layout.active_adapter_marker  # names the active adapter

    def next_path(self, base_model: str) -> Path:
        """``<base>-v<N>.gguf`` with N one past the highest version of that base. A base given
        as a file path is named by its file stem."""
        self.folder.mkdir(parents=True, exist_ok=True)
        stem = _SAFE.sub("-", Path(base_model).name.removesuffix(".gguf")) or "model"
        versions = [int(m.group(1)) for p in self.folder.glob(f"{stem}-v*.gguf")
                    if (m := _VERSION.search(p.name))]
        return self.folder / f"{stem}-v{max(versions, default=0) + 1}.gguf"

    def list(self) -> list[dict]:
        """Every adapter with its metadata; ``active`` marks the one in use."""
        active = self.active_name()
        rows = []
        for path in sorted(self.folder.glob("*.gguf")) if self.folder.is_dir() else []:
            meta = read_adapter_metadata(read_gguf_info(path))
            rows.append({**meta, "name": path.stem, "path": str(path), "active": path.stem == active})
        return rows

    def path_of(self, name: str) -> Path:
        """The file of adapter ``name``; AdapterNotFoundError if absent."""
        path = self.folder / f"{name}.gguf"
        if not path.is_file():
            raise AdapterNotFoundError(f"no adapter named '{name}' (see 'assistant adapters')", param="adapter")
        return path

    def activate(self, name: str) -> Path:
        """Mark ``name`` active (atomic rename of the marker file)."""
        path = self.path_of(name)
        tmp = self.marker.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({"active": name}))
        os.replace(tmp, self.marker)
        return path

    def active_name(self) -> Optional[str]:
        """The active adapter's name, if one is marked and its file exists."""
        try:
            name = json.loads(self.marker.read_text()).get("active")
        except (OSError, ValueError):
            return None
        return name if name and (self.folder / f"{name}.gguf").is_file() else None

    def active_path(self) -> Optional[Path]:
        """The active adapter's file, or None."""
        name = self.active_name()
        return self.folder / f"{name}.gguf" if name else None
