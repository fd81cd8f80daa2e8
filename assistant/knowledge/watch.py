"""``personalize --watch``: re-index when notes change (watchdog).

Events are debounced (an editor's save is several events) and then the affected roots
get an ordinary incremental pass: unchanged files cost a ``stat``, so a pass over a
thousand notes takes a fraction of a second and a saved file is searchable within about
a second of the save.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Callable, Optional

from assistant.errors import AssistantError
from assistant.knowledge.indexer import Indexer, resolve_root
from assistant.knowledge.parsers import format_for

DEBOUNCE_S = 0.3


class _Changes:
    """Roots with pending changes, filled by watchdog's thread, drained by the loop."""

    def __init__(self) -> None:
        self.roots: set[Path] = set()
        self.last_event = 0.0
        self.wake = threading.Event()

    def add(self, root: Path) -> None:
        """Note a change under ``root`` and wake the loop."""
        self.roots.add(root)
        self.last_event = time.monotonic()
        self.wake.set()


def _relevant(path: str, root: Path, home: Path) -> bool:
    """A supported, non-hidden file outside the assistant's data folder."""
    if path.startswith(str(home)):
        return False
    parts = Path(path).relative_to(root).parts if path.startswith(str(root)) else Path(path).parts
    if any(part.startswith(".") for part in parts):
        return False
    return format_for(os.path.basename(path)) is not None


def _handler(root: Path, home: Path, changes: _Changes):
    from watchdog.events import FileSystemEventHandler

    class Handler(FileSystemEventHandler):
        """Notes a root as changed when one of its note files is touched."""

        def on_any_event(self, event) -> None:
            paths = [event.src_path, getattr(event, "dest_path", "") or ""]
            if any(p and (_relevant(p, root, home) or (event.is_directory and event.event_type != "modified"))
                   for p in paths):
                changes.add(root)

    return Handler()


def watch(indexer: Indexer, paths: list, stop: Optional[threading.Event] = None,
          on_pass: Callable[[str], None] = print) -> None:
    """Block, re-indexing the given roots as they change, until ``stop`` is set (or
    Ctrl-C). Each pass's one-line outcome goes to ``on_pass``."""
    from watchdog.observers import Observer

    roots = [resolve_root(p) for p in paths]
    home = indexer.settings.home.resolve()
    changes = _Changes()
    observer = Observer()
    for root in roots:
        folder = root if root.is_dir() else root.parent
        observer.schedule(_handler(root, home, changes), str(folder), recursive=root.is_dir())
    observer.start()
    on_pass(f"watching {', '.join(map(str, roots))} (Ctrl-C to stop)")
    stop = stop or threading.Event()
    try:
        while not stop.is_set():
            if not changes.wake.wait(timeout=0.5):
                continue
            if time.monotonic() - changes.last_event < DEBOUNCE_S:
                time.sleep(DEBOUNCE_S / 3)
                continue
            changes.wake.clear()
            pending, changes.roots = changes.roots, set()
            _one_pass(indexer, sorted(pending), on_pass)
    finally:
        observer.stop()
        observer.join(timeout=5)


def _one_pass(indexer: Indexer, roots: list[Path], on_pass: Callable[[str], None]) -> None:
    try:
        report = indexer.run(roots)
    except AssistantError as exc:  # e.g. busy index or a deleted root: keep watching
        on_pass(f"error: {exc.message}")
        return
    on_pass(f"updated: new {report.new}, changed {report.changed}, deleted {report.deleted}, "
            f"{report.embedded} chunks embedded in {report.seconds:.2f} s")
