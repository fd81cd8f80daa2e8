"""Chunking: split a document's lines at its headings, then pack each section's lines
into chunks bounded in tokens, with a small overlap between neighbours.

Each chunk keeps its heading path (``Health > Dentist``) and the first and last source
line it covers, so search results and citations point back into the file.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Iterable

from assistant.knowledge.text_formats import TextLine

CountTokens = Callable[[list[str]], list[int]]  # a batch of texts -> their token counts


@dataclass(frozen=True)
class ChunkerConfig:
    """How documents are cut; stored with the index so a change re-chunks everything."""

    max_tokens: int = 128  # encoder tokens; under the encoder's 256 so nothing is truncated
    overlap_tokens: int = 16  # carried from the end of one chunk into the next
    version: int = 1  # bump when the algorithm changes

    def as_dict(self) -> dict:
        """The config as stored in the index metadata."""
        return asdict(self)


@dataclass(frozen=True)
class Chunk:
    """A bounded passage of a document."""

    ordinal: int
    heading: str  # heading path, "" before the first heading
    start_line: int
    end_line: int
    text: str
    token_count: int


@dataclass(frozen=True)
class _Piece:
    number: int
    text: str
    tokens: int


def chunk_lines(lines: list[TextLine], count_tokens: CountTokens,
                config: ChunkerConfig = ChunkerConfig()) -> list[Chunk]:
    """Chunks of a parsed document, in document order."""
    counts = count_tokens([line.text for line in lines]) if lines else []
    chunks: list[Chunk] = []
    stack: list[tuple[int, str]] = []
    section: list[_Piece] = []
    section_start = 1
    for line, tokens in zip(lines, counts):
        if line.heading_level:
            chunks.extend(_pack(section, _path(stack), section_start, config, count_tokens, len(chunks)))
            stack = [(level, title) for level, title in stack if level < line.heading_level]
            stack.append((line.heading_level, line.text.strip()))
            section, section_start = [], line.number
        else:
            section.append(_Piece(line.number, line.text, tokens))
    chunks.extend(_pack(section, _path(stack), section_start, config, count_tokens, len(chunks)))
    return chunks


def _path(stack: list[tuple[int, str]]) -> str:
    return " > ".join(title for _, title in stack if title)


def _pack(pieces: list[_Piece], heading: str, section_start: int, config: ChunkerConfig,
          count_tokens: CountTokens, first_ordinal: int) -> Iterable[Chunk]:
    """Greedy packing of a section's lines; a chunk starts at its section's heading line
    when it is the section's first, so a citation includes the heading."""
    pieces = _split_long(pieces, config.max_tokens, count_tokens)
    chunks: list[Chunk] = []
    current: list[_Piece] = []
    used = 0
    for piece in pieces:
        if current and used + piece.tokens > config.max_tokens:
            chunks.append(_make(current, heading, first_ordinal + len(chunks), section_start if not chunks else None))
            current = _overlap(current, config.overlap_tokens)
            used = sum(p.tokens for p in current)
        current.append(piece)
        used += piece.tokens
    if any(p.text.strip() for p in current):
        chunks.append(_make(current, heading, first_ordinal + len(chunks), section_start if not chunks else None))
    return [c for c in chunks if c.text]


def _overlap(previous: list[_Piece], overlap_tokens: int) -> list[_Piece]:
    """The trailing lines of the previous chunk that fit in the overlap (never all of them,
    so packing always moves forward)."""
    carried: list[_Piece] = []
    total = 0
    for piece in reversed(previous[1:]):
        if total + piece.tokens > overlap_tokens:
            break
        carried.insert(0, piece)
        total += piece.tokens
    return carried


def _make(pieces: list[_Piece], heading: str, ordinal: int, section_start: int | None) -> Chunk:
    body = [p for p in pieces]
    while body and not body[0].text.strip():
        body.pop(0)
    while body and not body[-1].text.strip():
        body.pop()
    if not body:
        return Chunk(ordinal, heading, 0, 0, "", 0)
    start = min(section_start, body[0].number) if section_start else body[0].number
    text = "\n".join(_join_same_line(body))
    return Chunk(ordinal, heading, start, body[-1].number, text, sum(p.tokens for p in body))


def _join_same_line(pieces: list[_Piece]) -> list[str]:
    """Pieces of one long source line go back together with spaces, not newlines."""
    out: list[str] = []
    last_number = None
    for piece in pieces:
        if piece.number == last_number:
            out[-1] = out[-1] + " " + piece.text
        else:
            out.append(piece.text.rstrip())
        last_number = piece.number
    return out


def _split_long(pieces: list[_Piece], max_tokens: int, count_tokens: CountTokens) -> list[_Piece]:
    """Lines longer than a chunk are cut in halves (by words, or by characters for text
    without spaces such as CJK or a long URL) until every part fits; parts keep the line
    number of their source line."""
    out: list[_Piece] = []
    for piece in pieces:
        if piece.tokens <= max_tokens:
            out.append(piece)
            continue
        words = piece.text.split()
        if len(words) > 1:
            middle = len(words) // 2
            halves = [" ".join(words[:middle]), " ".join(words[middle:])]
        else:
            middle = len(piece.text) // 2
            halves = [piece.text[:middle], piece.text[middle:]]
        if not all(halves):  # one character over budget: nothing left to cut
            out.append(_Piece(piece.number, piece.text, max_tokens))
            continue
        parts = [_Piece(piece.number, text, tokens) for text, tokens in zip(halves, count_tokens(halves))]
        out.extend(_split_long(parts, max_tokens, count_tokens))
    return out
