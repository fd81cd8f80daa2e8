"""Walking a notes folder: which files to index, which to skip and why.

The walk never writes anything, never follows a symlink into a folder it has already
visited (that is how symlink loops end), and never follows one out of the folder it was
given unless asked (a link to ``~/.ssh`` in a notes folder must not index the keys). Hidden folders and files are left out, as is the
assistant's own data folder if it happens to sit inside the notes.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

from assistant.knowledge.parsers import format_for


@dataclass(frozen=True)
class ScanEntry:
    """A file of a supported format; ``skip_reason`` is set when it cannot be indexed."""

    path: str
    size: int
    mtime_ns: int
    skip_reason: Optional[str] = None


@dataclass
class ScanResult:
    """Files found under one root, plus what was left out of the walk."""

    entries: list[ScanEntry] = field(default_factory=list)
    skipped_folders: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    ignored_files: int = 0  # files of unsupported formats, hidden files


def scan(root: Path, max_file_bytes: int, exclude: tuple[Path, ...] = (), follow_symlinks_out: bool = False,
         ) -> ScanResult:
    """Everything under ``root`` (a folder or a single file) that personalize should look at;
    symlinks leading outside ``root`` are skipped unless ``follow_symlinks_out``."""
    result = ScanResult()
    excluded = {os.path.realpath(p) for p in exclude}
    inside = None if follow_symlinks_out else os.path.realpath(root)
    if root.is_file() or not root.is_dir():
        entry = _file_entry(str(root), max_file_bytes)
        if entry is not None:
            result.entries.append(entry)
        return result
    visited: set[tuple[int, int]] = set()
    for entry in _walk(str(root), visited, excluded, result, max_file_bytes, inside):
        result.entries.append(entry)
    return result


def _walk(folder: str, visited: set, excluded: set, result: ScanResult,
          max_file_bytes: int, inside: Optional[str]) -> Iterator[ScanEntry]:
    """Depth-first walk; sorted names so runs and reports are reproducible."""
    try:
        info = os.stat(folder)
    except OSError as exc:
        result.skipped_folders.append((folder, f"unreadable folder ({exc.strerror})"))
        return
    key = (info.st_dev, info.st_ino)
    if key in visited:
        result.skipped_folders.append((folder, "symlink loop (folder already visited)"))
        return
    visited.add(key)
    try:
        with os.scandir(folder) as iterator:
            children = sorted(iterator, key=lambda e: e.name)
    except OSError as exc:
        result.skipped_folders.append((folder, f"unreadable folder ({exc.strerror})"))
        return
    for child in children:
        if inside is not None and child.is_symlink() and _leads_outside(child.path, inside):
            result.skipped_folders.append((child.path, "symlink out of the notes folder (--follow-symlinks "
                                                       "to index it)"))
            continue
        if child.name.startswith("."):
            if _is_dir(child):
                result.skipped_folders.append((child.path, "hidden folder"))
            else:
                result.ignored_files += 1
            continue
        if _is_dir(child):
            if os.path.realpath(child.path) in excluded:
                result.skipped_folders.append((child.path, "the assistant's data folder"))
                continue
            yield from _walk(child.path, visited, excluded, result, max_file_bytes, inside)
            continue
        entry = _file_entry(child.path, max_file_bytes)
        if entry is None:
            result.ignored_files += 1
        else:
            yield entry


def _leads_outside(path: str, inside: str) -> bool:
    """The link at ``path`` points outside the folder ``inside`` (a real path)."""
    target = os.path.realpath(path)
    return not (target == inside or target.startswith(inside.rstrip(os.sep) + os.sep))


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir(follow_symlinks=True)
    except OSError:
        return False


def _file_entry(path: str, max_file_bytes: int) -> Optional[ScanEntry]:
    """A ScanEntry for a supported file (maybe with a skip reason), None for other files."""
    if format_for(os.path.basename(path)) is None:
        return None
    try:
        info = os.stat(path)
    except OSError as exc:
        return ScanEntry(path, -1, 0, f"unreadable ({exc.strerror})")
    if stat.S_ISDIR(info.st_mode):
        return None
    if not stat.S_ISREG(info.st_mode):
        # FIFOs, sockets and devices would block or never end when read
        return ScanEntry(path, -1, info.st_mtime_ns, "not a regular file")
    if info.st_size > max_file_bytes:
        return ScanEntry(path, info.st_size, info.st_mtime_ns,
                         f"too large ({info.st_size:,} bytes > limit {max_file_bytes:,})")
    return ScanEntry(path, info.st_size, info.st_mtime_ns)
