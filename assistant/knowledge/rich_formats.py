"""Formats that need more than line splitting: HTML (visible text only, ``h1``-``h6``
as headings) and PDF (text extracted by pypdf, one heading per page)."""
from __future__ import annotations

import io
from html.parser import HTMLParser

from assistant.knowledge.text_formats import TextLine

# Elements whose content a browser does not show as page text.
_INVISIBLE = {"script", "style", "template", "noscript", "head", "svg", "math", "iframe", "object"}
# Elements that start a new line of text when rendered.
_BLOCK = {"p", "div", "br", "li", "tr", "td", "th", "section", "article", "header", "footer", "nav",
          "blockquote", "pre", "dt", "dd", "ul", "ol", "table", "hr", "main", "aside", "figure",
          "figcaption", "address", "details", "summary", "form", "fieldset", "caption", "title"}
_HEADINGS = {f"h{level}": level for level in range(1, 7)}
_VOID = {"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "embed", "source",
         "track", "wbr", "param"}


class _VisibleText(HTMLParser):
    """Collects visible text as lines, each tagged with the source line it starts on."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[TextLine] = []
        self._hidden_depth = 0
        self._heading_level = 0
        self._parts: list[str] = []
        self._start_line = 1

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in _VOID:
            if tag in _BLOCK:
                self._flush()
            return
        if tag in _INVISIBLE or any(name == "hidden" for name, _ in attrs):
            self._hidden_depth += 1
        elif tag in _HEADINGS or tag in _BLOCK:
            self._flush()
            self._heading_level = _HEADINGS.get(tag, self._heading_level)

    def handle_endtag(self, tag: str) -> None:
        if tag in _INVISIBLE:
            self._hidden_depth = max(0, self._hidden_depth - 1)
        elif tag in _HEADINGS or tag in _BLOCK:
            self._flush()
            if tag in _HEADINGS:
                self._heading_level = 0

    def handle_data(self, data: str) -> None:
        if self._hidden_depth or not data.strip():
            if data and self._parts:
                self._parts.append(" ")
            return
        if not self._parts:
            self._start_line = self.getpos()[0] + _leading_newlines(data)
        self._parts.append(data)

    def _flush(self) -> None:
        text = " ".join("".join(self._parts).split())
        self._parts = []
        if text:
            self.lines.append(TextLine(self._start_line, text, self._heading_level))

    def close(self) -> None:
        super().close()
        self._flush()


def _leading_newlines(data: str) -> int:
    stripped = data.lstrip()
    return data[: len(data) - len(stripped)].count("\n")


def parse_html(text: str) -> list[TextLine]:
    """Visible text of an HTML page: scripts, styles, the head and ``hidden`` elements are
    left out; ``h1``-``h6`` become headings; line numbers point into the HTML source."""
    parser = _VisibleText()
    parser.feed(text)
    parser.close()
    return parser.lines


class CorruptDocumentError(ValueError):
    """A binary document (PDF) that could not be read."""


def parse_pdf(data: bytes) -> list[TextLine]:
    """Text of every page via pypdf; each page opens with a ``Page N`` heading, and line
    numbers count lines of the extracted text (a PDF has no source lines)."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            raise CorruptDocumentError("encrypted PDF")
        pages = [page.extract_text() or "" for page in reader.pages]
    except CorruptDocumentError:
        raise
    except (PdfReadError, ValueError, TypeError, KeyError, AttributeError, IndexError,
            RecursionError, OSError, AssertionError) as exc:
        # pypdf signals malformed files with a wide range of exception types
        raise CorruptDocumentError(f"corrupt PDF ({type(exc).__name__}: {exc})") from exc
    lines: list[TextLine] = []
    number = 0
    for page_number, page_text in enumerate(pages, start=1):
        number += 1
        lines.append(TextLine(number, f"Page {page_number}", 1))
        for line in page_text.splitlines():
            number += 1
            lines.append(TextLine(number, line))
    return lines
