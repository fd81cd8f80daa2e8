"""Knowledge-specific errors; the CLI prints them as one line, the server as OpenAI JSON."""
from __future__ import annotations

import errno
import shutil
import sqlite3
from pathlib import Path

from assistant.errors import AssistantError, DiskFullError


class KnowledgeError(AssistantError):
    """Base of errors raised by the knowledge store."""

    code = "knowledge_error"


class SourceNotFoundError(KnowledgeError):
    """A path given to personalize or forget does not exist or is not indexed."""

    status = 404
    code = "source_not_found"


class IndexBusyError(KnowledgeError):
    """Another process is writing the index right now."""

    status = 409
    code = "index_busy"


class IndexMismatchError(KnowledgeError):
    """The index was built with another encoder or dimension than the one available."""

    status = 500
    type = "server_error"
    code = "index_mismatch"


class EncoderError(KnowledgeError):
    """The embedding model could not be found, exported or loaded."""

    status = 500
    type = "server_error"
    code = "encoder_unavailable"


class InvalidQueryError(KnowledgeError):
    """A search or embedding request with a bad value (empty query, k out of range)."""

    code = "invalid_request"


class IndexNotFoundError(KnowledgeError):
    """Nothing is indexed in this data dir yet."""

    status = 404
    code = "index_not_found"


class PassageNotFoundError(KnowledgeError):
    """No indexed passage at that path and line range (the path may not be indexed at all)."""

    status = 404
    code = "passage_not_found"


def is_disk_full(exc: BaseException) -> bool:
    """SQLite's "database or disk is full", or an OSError for no space left."""
    if isinstance(exc, sqlite3.OperationalError):
        return "full" in str(exc).lower()
    return isinstance(exc, OSError) and exc.errno == errno.ENOSPC


def disk_full(folder: Path) -> DiskFullError:
    """The one-line error for a full disk under ``folder``."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free_kb = shutil.disk_usage(probe).free // 1024
    return DiskFullError(f"no space left on the disk holding {folder} ({free_kb} KB free): nothing was changed; "
                         "free some space and run it again")
