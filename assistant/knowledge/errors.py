"""Knowledge-specific errors; the CLI prints them as one line, the server as OpenAI JSON."""
from __future__ import annotations

from assistant.errors import AssistantError


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
