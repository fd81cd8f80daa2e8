"""Where the index lives under ``$ASSISTANT_HOME`` and the lock that lets one writer in."""
from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from assistant.knowledge.errors import IndexBusyError
from assistant.settings import Settings


@dataclass(frozen=True)
class IndexLayout:
    """Paths of one knowledge index: ``folder`` and ``database`` come from the home's
    layout; the files inside the folder are the index's own business."""

    folder: Path
    database: Path  # SQLite: sources, documents, chunks, vectors, FTS5, metadata

    @classmethod
    def for_settings(cls, settings: Settings) -> "IndexLayout":
        """The index of this data dir (``settings.layout``)."""
        return cls(settings.layout.knowledge, settings.layout.index_database)

    @property
    def vectors(self) -> Path:
        """Folder of hnswlib files, one per committed generation."""
        return self.folder / "vectors"

    @property
    def lock_file(self) -> Path:
        """Held (flock) by the one process allowed to write."""
        return self.folder / "write.lock"


class WriteLock:
    """An exclusive, non-blocking ``flock``; the kernel releases it if the holder dies,
    so a killed personalize never leaves the index locked."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> "WriteLock":
        """Take the lock or raise IndexBusyError."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(fd)
            raise IndexBusyError("another `assistant personalize` or `forget` is updating the index; "
                                 "try again when it finishes") from exc
        self._fd = fd
        return self

    def release(self) -> None:
        """Let the next writer in."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "WriteLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
