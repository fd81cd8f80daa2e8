"""The parser registry: file extension -> format -> a function from raw bytes to lines.

A parser either returns the document's lines or raises ``ParseError`` with a reason a
person can act on (``not UTF-8 text``, ``corrupt PDF``); the indexer records the reason
and moves on.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from assistant.knowledge.rich_formats import CorruptDocumentError, parse_html, parse_pdf
from assistant.knowledge.text_formats import (TextLine, UndecodableError, decode_text, parse_markdown,
                                              parse_org, parse_plain, parse_rst)


class ParseError(ValueError):
    """The file could not be turned into text; ``str(error)`` is the reason."""


@dataclass(frozen=True)
class Format:
    """A document format: its name, whether its bytes are text, and its parser."""

    name: str
    is_text: bool
    parse_bytes: Callable[[bytes], list[TextLine]]


def _text_format(name: str, parse_text: Callable[[str], list[TextLine]]) -> Format:
    return Format(name, True, lambda data: parse_text(decode_text(data)))


FORMATS: dict[str, Format] = {
    "markdown": _text_format("markdown", parse_markdown),
    "text": _text_format("text", parse_plain),
    "org": _text_format("org", parse_org),
    "rst": _text_format("rst", parse_rst),
    "html": _text_format("html", parse_html),
    "pdf": Format("pdf", False, parse_pdf),
}

EXTENSIONS: dict[str, str] = {
    ".md": "markdown", ".markdown": "markdown",
    ".txt": "text",
    ".org": "org",
    ".rst": "rst",
    ".html": "html", ".htm": "html",
    ".pdf": "pdf",
}


def format_for(filename: str) -> Format | None:
    """The format for a file name by its (case-insensitive) extension, or None."""
    dot = filename.rfind(".")
    if dot <= 0:
        return None
    name = EXTENSIONS.get(filename[dot:].lower())
    return FORMATS[name] if name else None


def looks_binary(data: bytes) -> bool:
    """NUL bytes in the first 8 KiB mean binary (UTF-16 text with a BOM excepted)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return False
    return b"\x00" in data[:8192]


def parse_document(fmt: Format, data: bytes) -> list[TextLine]:
    """Parse ``data`` as ``fmt``; ParseError with the reason when that is impossible."""
    if fmt.is_text and looks_binary(data):
        raise ParseError("binary file")
    try:
        lines = fmt.parse_bytes(data)
    except (UndecodableError, CorruptDocumentError) as exc:
        raise ParseError(str(exc)) from exc
    except RecursionError as exc:
        raise ParseError("too deeply nested to parse") from exc
    if not any(line.text.strip() for line in lines):
        raise ParseError("no text")
    return lines
